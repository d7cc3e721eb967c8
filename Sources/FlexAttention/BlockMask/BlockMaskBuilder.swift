/// Builds a ``BlockRuns`` for one axis of a block mask by recursive halving of block ranges.
struct BlockMaskBuilder: ~Copyable {
    /// One axis of the score matrix cut into blocks.
    struct Axis {
        var length: Int
        var blockSize: Int

        var blockCount: Int { (length + blockSize - 1) / blockSize }

        func elements(_ blocks: Range<Int>) -> Range<Int> {
            (blocks.lowerBound * blockSize)..<min(blocks.upperBound * blockSize, length)
        }
    }

    private var analysis: MaskRegionAnalysis
    private let batches: Int
    private let heads: Int

    init(evaluator: MaskTileEvaluator, extremes: [TableExtremes], batches: Int, heads: Int) {
        analysis = MaskRegionAnalysis(evaluator, extremes: extremes)
        self.batches = batches
        self.heads = heads
    }

    /// One line per (batch, head, major block), batches outermost, listing the minor blocks kept.
    mutating func runs(major: Axis, minor: Axis, majorIsQuery: Bool) throws -> BlockRuns {
        var runs = BlockRuns()
        for b in 0..<batches {
            for h in 0..<heads {
                for block in 0..<major.blockCount {
                    let line = major.elements(block..<block + 1)
                    try classify(
                        minorBlocks: 0..<minor.blockCount, minor: minor, into: &runs,
                        region: { minorElements in
                            ScoreRegion(
                                batches: b..<b + 1, heads: h..<h + 1, queries: majorIsQuery ? line : minorElements,
                                keys: majorIsQuery ? minorElements : line)
                        })
                    runs.endLine()
                }
            }
        }
        return runs
    }

    /// Appends the kept blocks among `minorBlocks` of the current line: a range the intervals decide is taken or
    /// dropped whole, an undecided single block is classified exactly, any other range is halved.
    private mutating func classify(
        minorBlocks: Range<Int>, minor: Axis, into runs: inout BlockRuns, region: (Range<Int>) -> ScoreRegion
    ) throws {
        let whole = region(minor.elements(minorBlocks))
        let (values, isSafe) = analysis.bounds(whole)
        var kind = isSafe && values.canBeTrue != values.canBeFalse ? values : nil
        if kind == nil && minorBlocks.count == 1 {
            kind = try analysis.census(whole)
        }
        guard let kind else {
            let middle = minorBlocks.lowerBound + minorBlocks.count / 2
            try classify(minorBlocks: minorBlocks.lowerBound..<middle, minor: minor, into: &runs, region: region)
            try classify(minorBlocks: middle..<minorBlocks.upperBound, minor: minor, into: &runs, region: region)
            return
        }
        if kind.canBeTrue { runs.append(minorBlocks, isFull: !kind.canBeFalse) }
    }
}
