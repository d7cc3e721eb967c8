/// The rows one step moves between two ranks, packed in one buffer as `[K of chunk 0 | K of chunk 1 | V of chunk 0 |
/// V of chunk 1]`, each `[B, H, rows, D]` contiguous: the layout of the keys and values sent, and (in Float32) of
/// their gradients sent back.
struct ContextParallelTransfer {
    /// Per source chunk, the rows moved (``ContextParallelSchedule/Step/keyRows``).
    let keyRows: [Range<Int>]
    let batch: Int
    let heads: Int
    let headDim: Int
    let valueDim: Int

    private func keyElements(_ chunk: Int) -> Int { batch * heads * keyRows[chunk].count * headDim }
    private func valueElements(_ chunk: Int) -> Int { batch * heads * keyRows[chunk].count * valueDim }

    /// Elements of the whole packed buffer.
    var elements: Int { (0..<2).map { keyElements($0) + valueElements($0) }.reduce(0, +) }

    /// The view of chunk `chunk`'s keys (`value` false) or values in a packed buffer of `dtype`; nil when the chunk
    /// moves no rows.
    func view(_ buffer: DeviceBuffer, dtype: DType, chunk: Int, value: Bool) throws -> DeviceTensor? {
        guard !keyRows[chunk].isEmpty else { return nil }
        let keys = keyElements(0) + keyElements(1)
        let offset = value ? keys + (chunk == 1 ? valueElements(0) : 0) : (chunk == 1 ? keyElements(0) : 0)
        let shape = [batch, heads, keyRows[chunk].count, value ? valueDim : headDim]
        return try DeviceTensor(
            buffer: buffer, dtype: dtype, shape: shape, strides: Tensor.contiguousStrides(shape), offset: offset)
    }
}

extension DeviceTensor {
    /// The view of heads `heads` and rows `rows` (axes 1 and 2) of a `[B, H, S, D]` tensor.
    func slice(heads: Range<Int>, rows: Range<Int>) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: buffer, dtype: dtype, shape: [shape[0], heads.count, rows.count, shape[3]], strides: strides,
            offset: offset + heads.lowerBound * strides[1] + rows.lowerBound * strides[2])
    }

    /// A `[B, H, S]` tensor's heads `heads` and rows `rows` as a `[B, heads, rows, 1]` view (what
    /// ``accumulate(_:adding:on:)`` takes).
    func rowSlice(heads: Range<Int>, rows: Range<Int>) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: buffer, dtype: dtype, shape: [shape[0], heads.count, rows.count, 1], strides: strides + [1],
            offset: offset + heads.lowerBound * strides[1] + rows.lowerBound * strides[2])
    }
}
