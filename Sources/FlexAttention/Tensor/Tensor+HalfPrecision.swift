extension Tensor {
    /// A new ``DType/float16`` tensor holding `values` bit for bit, so half-precision data from elsewhere needs
    /// no round trip through Float. `values` are in the layout's memory order, as
    /// ``init(_:shape:dtype:layout:)`` takes them.
    /// - Throws: ``FlexAttentionError`` for a negative extent, a count of `values` other than the shape's, or a
    ///   BSHD shape that is not rank 4.
    public init(float16 values: [Float16], shape: [Int], layout: TensorLayout = .bhsd) throws {
        try self.init(bits: values, shape: shape, dtype: .float16, layout: layout)
    }

    /// A new ``DType/bfloat16`` tensor holding `values` bit for bit, so bfloat16 data from elsewhere needs no
    /// round trip through Float. `values` are in the layout's memory order, as ``init(_:shape:dtype:layout:)``
    /// takes them.
    /// - Throws: ``FlexAttentionError`` for a negative extent, a count of `values` other than the shape's, or a
    ///   BSHD shape that is not rank 4.
    public init(bfloat16 values: [BFloat16], shape: [Int], layout: TensorLayout = .bhsd) throws {
        try self.init(bits: values.map(\.bitPattern), shape: shape, dtype: .bfloat16, layout: layout)
    }

    /// All elements as Float16, in logical row-major order: exact for a ``DType/float16`` tensor, rounded to
    /// nearest (ties to even) from the others.
    public func float16Values() -> [Float16] {
        var result = [Float16]()
        result.reserveCapacity(elementCount)
        forEachOffset { elementOffset in
            if dtype == .float16 {
                result.append(storage.baseAddress.load(fromByteOffset: elementOffset * 2, as: Float16.self))
            } else {
                result.append(Float16(load(atElementOffset: elementOffset)))
            }
        }
        return result
    }

    /// All elements as BFloat16, in logical row-major order: exact for a ``DType/bfloat16`` tensor, rounded to
    /// nearest (ties to even) from the others.
    public func bfloat16Values() -> [BFloat16] {
        var result = [BFloat16]()
        result.reserveCapacity(elementCount)
        forEachOffset { elementOffset in
            if dtype == .bfloat16 {
                result.append(
                    BFloat16(bitPattern: storage.baseAddress.load(fromByteOffset: elementOffset * 2, as: UInt16.self)))
            } else {
                result.append(BFloat16(load(atElementOffset: elementOffset)))
            }
        }
        return result
    }

    /// A new tensor of a 2-byte `dtype` whose memory is `values`' bytes.
    private init<Element: BitwiseCopyable>(bits values: [Element], shape: [Int], dtype: DType, layout: TensorLayout)
        throws
    {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "tensor", shape: shape)
        }
        try Tensor.requireElementCount(values.count, for: shape)
        try self.init(zeros: shape, dtype: dtype, layout: layout)
        let storage = storage
        values.withUnsafeBytes { raw in
            if let source = raw.baseAddress { storage.baseAddress.copyMemory(from: source, byteCount: raw.count) }
        }
    }
}
