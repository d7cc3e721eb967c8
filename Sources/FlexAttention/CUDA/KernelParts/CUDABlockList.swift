/// A block mask's per-(batch, head, query block) key blocks, as the kernels read them from the device:
/// `starts[line] ..< starts[line + 1]` index `entries`, each `keyBlock << 1 | partial`, in key order. Lines
/// follow ``BlockMask``'s folding: a mask that reads neither `b` nor `h` has one line per query block.
/// Transposed (for the dK/dV kernels), lines are per key block and entries `queryBlock << 1 | partial`, `turns`
/// gives each entry its turn among the key blocks that add to that query block's dQ (``QueryGradientSums``), and
/// `adders` counts, per (batch, head) and query block, the key blocks that add to it: the turn counter's final value.
struct CUDABlockList {
    let starts: DeviceBuffer
    let entries: DeviceBuffer
    let turns: DeviceBuffer?
    /// Per `(b · batchStride + h · headStride) · queryBlocks + queryBlock`, transposed lists only.
    let adders: DeviceBuffer?
    /// Multipliers of `b` and `h` in the kernel's line index `(b · batchStride + h · headStride) · qBlocks + qBlock`.
    let batchStride: Int
    let headStride: Int

    init(_ blocks: BlockMask, transposed: Bool = false, device: CUDADevice) throws {
        var starts: [Int32] = [0]
        var list: [Int32] = []
        var turns: [Int32] = []
        var adders: [Int32] = []
        for b in 0..<(blocks.dependsOnBatch ? blocks.batch : 1) {
            for h in 0..<(blocks.dependsOnHead ? blocks.heads : 1) {
                let first = list.count
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
                if transposed {
                    let lines = starts.suffix(blocks.keyBlockCount + 1).map { Int($0) - first }
                    turns += Self.turns(lines: lines, entries: Array(list[first...]), queryBlocks: blocks.queryBlockCount)
                    adders += Self.adders(entries: list[first...], queryBlocks: blocks.queryBlockCount)
                }
            }
        }
        self.starts = try DeviceBuffer(device: device, copying: starts)
        self.entries = try DeviceBuffer(device: device, copying: list + [0])
        self.turns = transposed ? try DeviceBuffer(device: device, copying: turns + [0]) : nil
        self.adders = transposed ? try DeviceBuffer(device: device, copying: adders + [0]) : nil
        headStride = blocks.dependsOnHead ? 1 : 0
        batchStride = blocks.dependsOnBatch ? (blocks.dependsOnHead ? blocks.heads : 1) : 0
    }

    /// The turn of each entry of one (b, h)'s transposed lines (line k is `entries[starts[k] ..< starts[k + 1]]`):
    /// how many higher key blocks list the same query block. The highest key block adds first.
    static func turns(lines starts: [Int], entries: [Int32], queryBlocks: Int) -> [Int32] {
        var added = [Int32](repeating: 0, count: queryBlocks)
        var turns = [Int32](repeating: 0, count: entries.count)
        for line in (0..<max(0, starts.count - 1)).reversed() {
            for index in starts[line]..<starts[line + 1] {
                let block = Int(entries[index] >> 1)
                turns[index] = added[block]
                added[block] += 1
            }
        }
        return turns
    }

    /// How many of one (b, h)'s transposed entries name each query block: the key blocks that add to its dQ.
    static func adders(entries: ArraySlice<Int32>, queryBlocks: Int) -> [Int32] {
        var counts = [Int32](repeating: 0, count: queryBlocks)
        for entry in entries { counts[Int(entry >> 1)] += 1 }
        return counts
    }
}
