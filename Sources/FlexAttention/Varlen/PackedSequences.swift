/// Cumulative offsets of packed sequences (FlashAttention's `cu_seqlens`): where each sequence's queries and keys
/// lie in tensors that hold a batch of sequences of different lengths back to back, with no padding.
///
/// Sequence `b` is rows `queryOffsets[b]..<queryOffsets[b + 1]` of the packed queries and rows
/// `keyOffsets[b]..<keyOffsets[b + 1]` of the packed keys and values; its queries attend to its keys only.
///
/// ```swift
/// // Three sequences: 5 queries over 5 keys, 1 query over 7 keys, no queries over 2 keys.
/// let sequences = try PackedSequences(queryOffsets: [0, 5, 6, 6], keyOffsets: [0, 5, 12, 14])
/// sequences.count            // 3
/// sequences.queryRange(1)    // 5..<6
/// sequences.keyRange(1)      // 5..<12
/// ```
public struct PackedSequences: Sendable, Equatable {
    /// `B + 1` non-decreasing query offsets from 0; the last is the total query count.
    let queryOffsets: [Int]
    /// `B + 1` non-decreasing key offsets from 0; the last is the total key count.
    let keyOffsets: [Int]

    /// Sequences whose queries and keys start at these offsets.
    ///
    /// A sequence may have no queries (it computes nothing) or no keys (its queries keep nothing: O = 0 and
    /// LSE = −∞, as for an empty cache).
    /// - Parameters:
    ///   - queryOffsets: `B + 1` entries, the first 0, each at least the one before; the last is the number of
    ///     packed query rows.
    ///   - keyOffsets: as many entries, likewise; the last is the number of packed key (and value) rows.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` when an array is empty, the counts differ, an array
    ///   does not start at 0, or an offset is below the one before it.
    public init(queryOffsets: [Int], keyOffsets: [Int]) throws {
        for (name, offsets) in [("query", queryOffsets), ("key", keyOffsets)] {
            guard offsets.first == 0 else {
                throw FlexAttentionError.invalidArgument(
                    "the \(name) offsets must start at 0 (B + 1 entries for B sequences), got \(offsets.prefix(4))")
            }
            if let drop = offsets.indices.dropFirst().first(where: { offsets[$0] < offsets[$0 - 1] }) {
                throw FlexAttentionError.invalidArgument(
                    "the \(name) offsets must not decrease: entry \(drop) is \(offsets[drop]) after \(offsets[drop - 1])")
            }
        }
        guard queryOffsets.count == keyOffsets.count else {
            throw FlexAttentionError.invalidArgument(
                "\(queryOffsets.count) query offsets and \(keyOffsets.count) key offsets: each needs B + 1 entries")
        }
        self.queryOffsets = queryOffsets
        self.keyOffsets = keyOffsets
    }

    /// `B`, the number of sequences.
    public var count: Int { queryOffsets.count - 1 }

    /// The packed query rows of sequence `sequence`; an empty range for an index outside `0..<count`.
    public func queryRange(_ sequence: Int) -> Range<Int> { Self.range(sequence, of: queryOffsets) }

    /// The packed key and value rows of sequence `sequence`; an empty range for an index outside `0..<count`.
    public func keyRange(_ sequence: Int) -> Range<Int> { Self.range(sequence, of: keyOffsets) }

    /// The number of packed query rows, the last query offset.
    var totalQueries: Int { queryOffsets[count] }
    /// The number of packed key rows, the last key offset.
    var totalKeys: Int { keyOffsets[count] }

    private static func range(_ sequence: Int, of offsets: [Int]) -> Range<Int> {
        guard sequence >= 0, sequence < offsets.count - 1 else { return 0..<0 }
        return offsets[sequence]..<offsets[sequence + 1]
    }
}
