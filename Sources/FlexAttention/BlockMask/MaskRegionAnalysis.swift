/// Decides exactly whether a mask keeps all, none or some of a region, without visiting most elements: interval
/// analysis decides whole regions, and where it cannot (or cannot prove the table indices valid) the region is
/// halved, down to leaves small enough to evaluate element by element.
struct MaskRegionAnalysis: ~Copyable {
    /// Regions of at most this many elements are evaluated exactly.
    static let leafElements = 256

    private var intervals: ModIntervalMachine
    private let exact: MaskTileEvaluator

    init(_ evaluator: MaskTileEvaluator, extremes: [TableExtremes]) {
        exact = evaluator
        intervals = ModIntervalMachine(
            evaluator.program, queryLength: evaluator.queryLength, keyLength: evaluator.keyLength, extremes: extremes)
    }

    /// What the mask may give over `region` as decided by intervals alone, and whether every index is surely valid.
    mutating func bounds(_ region: ScoreRegion) -> (values: BoolSet, isSafe: Bool) {
        intervals.run(region)
        return (intervals.bool(intervals.program.outputs[0]), intervals.isSafe)
    }

    /// Whether the mask keeps some (`canBeTrue`) and removes some (`canBeFalse`) elements of `region`, exactly.
    /// - Throws: ``ModError`` for the first element found with a table index out of range or an Int division by 0.
    mutating func census(_ region: ScoreRegion, knownSafe: Bool = false) throws -> BoolSet {
        let (values, isSafe) = bounds(region)
        let safe = knownSafe || isSafe
        if safe && values.canBeTrue != values.canBeFalse { return values }
        if region.elementCount <= Self.leafElements {
            let (kept, removed) = try exact.census(
                batch: region.batches.lowerBound, head: region.heads.lowerBound, queries: region.queries, keys: region.keys)
            return BoolSet(canBeFalse: removed, canBeTrue: kept)
        }
        let (first, second) = region.halves
        let firstCensus = try census(first, knownSafe: safe)
        // Once both outcomes are seen the answer is known; only an unproven index forces visiting the rest.
        if safe && firstCensus == .either { return .either }
        return firstCensus.union(try census(second, knownSafe: safe))
    }
}

extension ScoreRegion {
    /// The region cut in two across its longer side.
    var halves: (ScoreRegion, ScoreRegion) {
        var (first, second) = (self, self)
        if queries.count >= keys.count {
            let middle = queries.lowerBound + queries.count / 2
            first.queries = queries.lowerBound..<middle
            second.queries = middle..<queries.upperBound
        } else {
            let middle = keys.lowerBound + keys.count / 2
            first.keys = keys.lowerBound..<middle
            second.keys = middle..<keys.upperBound
        }
        return (first, second)
    }
}
