/// How many splits (flash-decoding) a decode cuts each sequence's keys into, from the shape and the device alone, so
/// that the same plan always computes the same splits and the combine adds them in the same order.
///
/// A decode launches one CTA per (sequence, KV head, row tile, split). With few sequences and heads (B = 1 at 128k
/// context: 8 CTAs) the split count is what fills the machine: as many splits as one wave of resident CTAs holds
/// (`multiprocessors × CTAs per multiprocessor / CTAs per split`), so every CTA starts at once and, with the blocks
/// interleaved over the splits, finishes at about the same time. It is capped so that each split has at least
/// ``minimumBlocksPerSplit`` key blocks of the cache's capacity (fewer would spend more on the prologue and the
/// partials than on keys) and at ``maximumSplits``. When the other dimensions already fill a wave there is one split
/// and no combine.
enum DecodeSplitPlanner {
    /// The most splits: bounds the partials' memory and the combine's work per row; the combine reads one split's
    /// LSE per thread.
    static let maximumSplits = DecodeCombineKernel.threads
    /// The fewest key blocks of capacity per split.
    static let minimumBlocksPerSplit = 2

    /// - Parameters:
    ///   - ctasPerSplit: `B · Hkv · row tiles`, the CTAs of one split.
    ///   - capacity: tokens one sequence can hold.
    ///   - keyBlock: the kernel's keys per block.
    ///   - residentCTAs: CTAs the device runs at once (`multiprocessors × CTAs per multiprocessor`).
    static func splits(ctasPerSplit: Int, capacity: Int, keyBlock: Int, residentCTAs: Int) -> Int {
        let capacityBlocks = (capacity + keyBlock - 1) / keyBlock
        let byWave = residentCTAs / max(ctasPerSplit, 1)
        return max(1, min(byWave, capacityBlocks / minimumBlocksPerSplit, maximumSplits))
    }
}
