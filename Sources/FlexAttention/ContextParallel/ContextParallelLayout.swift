/// How a sequence's rows are dealt to the ranks of a context-parallel group.
///
/// The sequence is cut into `2·N` chunks of equal length for `N` ranks, and each rank holds two of them, first chunk
/// first. A rank's shard is those two chunks' rows, one after the other: `[B, H, 2·chunk, D]`.
public enum ContextParallelLayout: Sendable, Hashable, CustomStringConvertible {
    /// Rank `i` holds chunks `i` and `2N−1−i`: under a causal mask every rank then has the same work (the early
    /// chunk sees few keys, the late one many), which is what balances ring attention.
    case zigzag
    /// Rank `i` holds chunks `2i` and `2i+1`, the `i`-th contiguous stretch: unbalanced under a causal mask, kept
    /// for masks whose work is already even (a sliding window) and for comparison.
    case contiguous

    /// The two chunks `rank` holds, in the order its shard stores them.
    public func chunks(rank: Int, worldSize: Int) -> [Int] {
        switch self {
        case .zigzag: [rank, 2 * worldSize - 1 - rank]
        case .contiguous: [2 * rank, 2 * rank + 1]
        }
    }

    /// The global positions of a shard's rows, in its order, for a sequence of `length` rows.
    public func positions(rank: Int, worldSize: Int, length: Int) -> [Range<Int>] {
        let chunk = length / (2 * worldSize)
        return chunks(rank: rank, worldSize: worldSize).map { $0 * chunk..<($0 + 1) * chunk }
    }

    /// `zigzag` or `contiguous`.
    public var description: String {
        switch self {
        case .zigzag: "zigzag"
        case .contiguous: "contiguous"
        }
    }
}
