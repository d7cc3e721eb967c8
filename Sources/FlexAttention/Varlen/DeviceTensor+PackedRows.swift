/// Views of one sequence's part of packed device tensors, as ``Tensor/packedRows(_:)`` gives on the host.
extension DeviceTensor {
    /// Rows `rows` (not empty) of a packed `[total, H, D]` tensor as a `[1, H, rows.count, D]` view.
    func packedRows(_ rows: Range<Int>) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: buffer, dtype: dtype, shape: [1, shape[1], rows.count, shape[2]],
            strides: [rows.count * strides[0], strides[1], strides[0], strides[2]],
            offset: offset + rows.lowerBound * strides[0])
    }
}
