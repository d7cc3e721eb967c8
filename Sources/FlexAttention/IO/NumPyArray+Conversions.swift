extension NumPyArray {
    /// Reads a `.npy` file, no further than its header says: a pipe or a device is read for the array's bytes
    /// only, and a regular file's size is checked against the header before the elements are allocated.
    /// - Throws: ``NumPyError/unreadable(path:reason:)`` when it cannot be read,
    ///   ``NumPyError/trailingData(expectedBytes:)`` when a pipe or device goes on after the data,
    ///   ``FlexAttentionError/outOfMemory(byteCount:)`` when the elements cannot be allocated, else what
    ///   ``init(decoding:)`` throws.
    public init(contentsOfFile path: String) throws {
        let source = try NumPyFileSource(path: path)
        let prelude = try source.readPrelude()
        try self.init(prelude: prelude) { try source.readData(into: $0) }
    }

    /// The tensor's elements as `float32`, in logical row-major order (the tensor's layout and strides do not
    /// matter).
    public init(_ tensor: Tensor) {
        shape = tensor.shape
        elements = .float32(tensor.floats())
    }

    /// The array as a new contiguous tensor of the same shape: ``DType/float32`` for `<f4`, ``DType/float16`` for
    /// `<f2`.
    /// - Throws: ``NumPyError/unexpectedArray(_:)`` for integer elements; ``FlexAttentionError`` when it cannot be
    ///   allocated. A zero extent gives an empty tensor.
    public func tensor() throws -> Tensor {
        switch elements {
        case .float32(let values): return try Self.tensor(values, shape: shape, dtype: .float32)
        case .float16(let values): return try Self.tensor(values, shape: shape, dtype: .float16)
        case .int32, .int64:
            throw NumPyError.notTensorDType(elements.descr)
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
