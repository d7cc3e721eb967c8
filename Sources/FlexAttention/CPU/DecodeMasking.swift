/// What a decode work item's mask does to each of its key blocks, decided without evaluating most of them: the
/// block-mask builder's exact region analysis (``MaskRegionAnalysis``) over halves of the split's key range, at the
/// sequence's own lengths, per query head of the group.
struct DecodeMasking: Sendable {
    enum BlockState: Equatable {
        /// The mask removes every score: the block is not read.
        case removed
        /// The mask keeps every score: no mask is evaluated.
        case kept
        /// Mixed: the mask is evaluated element by element.
        case partial
    }

    let evaluator: MaskTileEvaluator
    private let extremes: [TableExtremes]

    init(_ mask: MaskMod, capacity: Int) throws {
        // The lengths here only size the evaluator; tiles and regions carry each sequence's own.
        evaluator = try MaskTileEvaluator(mask, queryLength: capacity, keyLength: capacity)
        extremes = evaluator.program.tables.map(TableExtremes.init)
    }

    /// The state of each block of `blockSize` keys of `keys` (the last may be shorter) for the query heads `heads`
    /// of sequence `b` at positions `queries`, in a sequence of `length` tokens.
    func blockStates(
        sequence b: Int, length: Int, heads: Range<Int>, queries: Range<Int>, keys: Range<Int>, blockSize: Int
    ) -> [BlockState] {
        let count = (keys.count + blockSize - 1) / blockSize
        guard count > 0 else { return [] }
        var analysis = MaskRegionAnalysis(evaluator.atLengths(length), extremes: extremes)
        var seen = [BoolSet](repeating: BoolSet(canBeFalse: false, canBeTrue: false), count: count)
        for h in heads {
            var pending = [0..<count]
            while let blocks = pending.popLast() {
                let region = ScoreRegion(
                    batches: b..<b + 1, heads: h..<h + 1, queries: queries,
                    keys: keys.lowerBound + blocks.lowerBound * blockSize..<min(
                        keys.lowerBound + blocks.upperBound * blockSize, keys.upperBound))
                // Indices were checked over the whole domain when the problem was made.
                let census = (try? analysis.census(region, knownSafe: true)) ?? .either
                if census != .either || blocks.count == 1 {
                    for block in blocks { seen[block] = seen[block].union(census) }
                } else {
                    let middle = blocks.lowerBound + blocks.count / 2
                    pending += [middle..<blocks.upperBound, blocks.lowerBound..<middle]
                }
            }
        }
        return seen.map { $0.canBeFalse ? ($0.canBeTrue ? .partial : .removed) : .kept }
    }
}
