/// Whole-row edits for the handling of non-finite inputs: copies with rows zeroed, outputs with rows set to NaN.
extension Tensor {
    /// A contiguous copy of a rank-4 tensor with the flagged rows `[b, h, s, :]` zeroed; the tensor itself when
    /// no row is flagged.
    func zeroing(_ rows: RowFlags) throws -> Tensor {
        guard !rows.isEmpty else { return self }
        let copy = try Tensor(zeros: shape, dtype: dtype)
        let (source, target) = (StridedRows(self), StridedRows(copy))
        let row = Scratch(shape[3])
        for b in 0..<shape[0] {
            for h in 0..<shape[1] {
                for s in 0..<shape[2] where !rows[b, h, s] {
                    source.read(b, h, s, into: row.pointer)
                    target.write(b, h, s, from: row.pointer)
                }
            }
        }
        return copy
    }

    /// Sets every element of the flagged rows `[b, h, s, :]` of a rank-4 tensor to NaN, in place (for outputs
    /// this library has just made).
    func fillWithNaN(_ rows: RowFlags) {
        let target = StridedRows(self)
        let nan = Scratch(shape[3])
        nan.pointer.update(repeating: .nan, count: shape[3])
        rows.forEach { b, h, s in target.write(b, h, s, from: nan.pointer) }
    }

    /// Sets the element `[b, h, s]` of a rank-3 tensor, in place.
    func set(_ value: Float, at b: Int, _ h: Int, _ s: Int) {
        store(value, atElementOffset: offset + b * strides[0] + h * strides[1] + s * strides[2])
    }
}
