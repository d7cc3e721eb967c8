extension Tensor {
    /// Reads a `<f4` or `<f2` `.npy` file straight into a new contiguous ``DType/float32`` or ``DType/float16``
    /// tensor, with no intermediate array, reading no further than the header says (see
    /// ``NumPyArray/init(contentsOfFile:)``).
    /// - Throws: ``NumPyError`` for a file that cannot be read or is not a well-formed `.npy` file of the size its
    ///   header declares, ``NumPyError/unexpectedArray(_:)`` for integer elements, ``FlexAttentionError`` for a
    ///   zero extent, a shape too large, or memory that cannot be had.
    public init(contentsOfNumPyFile path: String) throws {
        let source = try NumPyFileSource(path: path)
        let prelude = try source.readPrelude()
        let dtype: DType
        switch prelude.elementType {
        case .float32: dtype = .float32
        case .float16: dtype = .float16
        case .int32, .int64:
            throw NumPyError.notTensorDType(prelude.elementType.descr)
        }
        self = try Tensor(zeros: prelude.shape, dtype: dtype)
        try source.readData(into: UnsafeMutableRawBufferPointer(start: storage.baseAddress, count: prelude.byteCount))
    }
}
