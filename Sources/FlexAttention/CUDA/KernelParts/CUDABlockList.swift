/// A block mask's per-(batch, head, query block) key blocks, as the kernels read them from the device:
/// `starts[line] ..< starts[line + 1]` index `entries`, each `keyBlock << 1 | partial`, in key order. Lines
/// follow ``BlockMask``'s folding: a mask that reads neither `b` nor `h` has one line per query block.
/// Transposed (for the dK/dV kernels), lines are per key block and entries `queryBlock << 1 | partial`.
struct CUDABlockList {
    let starts: DeviceBuffer
    let entries: DeviceBuffer
    /// Multipliers of `b` and `h` in the kernel's line index `(b · batchStride + h · headStride) · qBlocks + qBlock`.
    let batchStride: Int
    let headStride: Int

    init(_ blocks: BlockMask, transposed: Bool = false, device: CUDADevice) throws {
        var starts: [Int32] = [0]
        var list: [Int32] = []
        for b in 0..<(blocks.dependsOnBatch ? blocks.batch : 1) {
            for h in 0..<(blocks.dependsOnHead ? blocks.heads : 1) {
                for line in 0..<(transposed ? blocks.keyBlockCount : blocks.queryBlockCount) {
                    let (full, partial) = transposed
                        ? (blocks.fullQueryBlocks(batch: b, head: h, keyBlock: line),
                           blocks.partialQueryBlocks(batch: b, head: h, keyBlock: line))
                        : (blocks.fullKeyBlocks(batch: b, head: h, queryBlock: line),
                           blocks.partialKeyBlocks(batch: b, head: h, queryBlock: line))
                    let kept = full.map { (block: $0, partial: 0) } + partial.map { (block: $0, partial: 1) }
                    list += kept.sorted { $0.block < $1.block }.map { Int32($0.block << 1 | $0.partial) }
                    starts.append(Int32(list.count))
                }
            }
        }
        self.starts = try DeviceBuffer(device: device, copying: starts)
        self.entries = try DeviceBuffer(device: device, copying: list + [0])
        headStride = blocks.dependsOnHead ? 1 : 0
        batchStride = blocks.dependsOnBatch ? (blocks.dependsOnHead ? blocks.heads : 1) : 0
    }
}
