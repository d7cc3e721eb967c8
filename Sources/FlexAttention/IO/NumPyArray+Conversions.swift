import Glibc

extension NumPyArray {
    /// Reads a `.npy` file.
    /// - Throws: ``NumPyError/unreadable(path:reason:)`` when it cannot be read, else what
    ///   ``init(decoding:)`` throws.
    public init(contentsOfFile path: String) throws {
        guard let bytes = FileSystem.read(path) else {
            throw NumPyError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        try self.init(decoding: bytes)
    }

    /// The tensor's elements as `float32`, in logical row-major order (the tensor's layout and strides do not
    /// matter).
    public init(_ tensor: Tensor) {
        shape = tensor.shape
        elements = .float32(tensor.floats())
    }

    /// The array as a new contiguous tensor of the same shape: ``DType/float32`` for `<f4`, ``DType/float16`` for
    /// `<f2`.
    /// - Throws: ``NumPyError/unexpectedArray(_:)`` for integer elements; ``FlexAttentionError`` for a zero extent.
    public func tensor() throws -> Tensor {
        switch elements {
        case .float32(let values): return try Self.tensor(values, shape: shape, dtype: .float32)
        case .float16(let values): return try Self.tensor(values, shape: shape, dtype: .float16)
        case .int32, .int64:
            throw NumPyError.unexpectedArray("dtype \(elements.descr) is not a tensor dtype (expected <f4 or <f2)")
        }
    }

    /// The array as a mod table named `name`: Int32 elements for `<i4` and `<i8` (whose values must fit), Float for
    /// `<f4`.
    /// - Throws: ``NumPyError/unexpectedArray(_:)`` for `<f2`; ``ModError`` for a bad name, a rank other than 1 to 3,
    ///   a zero extent or an `<i8` value outside Int32.
    public func table(named name: String) throws -> ModTable {
        switch elements {
        case .int32(let values): return try ModTable(name: name, shape: shape, elements: .int32(values))
        case .int64(let values): return try ModTable(name: name, shape: shape, int64: values)
        case .float32(let values): return try ModTable(name: name, shape: shape, elements: .float(values))
        case .float16:
            throw NumPyError.unexpectedArray("table \(name): dtype <f2 is not a table dtype (expected <i4, <i8 or <f4)")
        }
    }

    private static func tensor<T: BitwiseCopyable>(_ values: [T], shape: [Int], dtype: DType) throws -> Tensor {
        let tensor = try Tensor(zeros: shape, dtype: dtype)
        values.withUnsafeBytes { raw in
            if let source = raw.baseAddress {
                tensor.storage.baseAddress.copyMemory(from: source, byteCount: raw.count)
            }
        }
        return tensor
    }
}
