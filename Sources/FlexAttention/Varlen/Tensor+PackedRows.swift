/// Views of one sequence's part of packed tensors, in the rank-4 and rank-3 forms the attention machinery reads:
/// no copies, any strides.
extension Tensor {
    /// Rows `rows` of a packed `[total, H, D]` tensor as a `[1, H, rows.count, D]` view.
    func packedRows(_ rows: Range<Int>) throws -> Tensor {
        let part = try narrowed(axis: 0, range: rows)
        return try Tensor(
            storage: storage, dtype: dtype, shape: [1, shape[1], rows.count, shape[2]],
            strides: [rows.count * strides[0], strides[1], strides[0], strides[2]], offset: part.offset)
    }

    /// Columns `columns` of a packed log-sum-exp `[H, total]` as a `[1, H, columns.count]` view.
    func packedColumns(_ columns: Range<Int>) throws -> Tensor {
        let part = try narrowed(axis: 1, range: columns)
        return try Tensor(
            storage: storage, dtype: dtype, shape: [1, shape[0], columns.count],
            strides: [shape[0] * strides[0], strides[0], strides[1]], offset: part.offset)
    }
}
