/// Which work every rank of a context-parallel group does at every ring step, and which rows travel: decided once,
/// from the mask at global positions, identically on every rank (so sends and receives always match).
///
/// At step `s` rank `r` attends its two query chunks to the keys of rank `j = (r − s) mod N` (step 0: its own).
/// Each (query chunk, key chunk) pair is classified by the mask's region analysis (the block mask builder's,
/// exact): nothing kept (skipped), everything kept (no mask evaluated), the built-in causal diagonal, or partly
/// kept (the mask, moved to the pair's global offsets). Of a source chunk only the rows some pair keeps are sent,
/// rounded out to ``rowGranularity``: a sliding window receives a halo of its neighbours' rows, and a step with no
/// pair left sends nothing at all.
public struct ContextParallelSchedule: Sendable {
    /// Rows of a source chunk are sent in whole runs of this many (the kernels' largest key block).
    public static let rowGranularity = 128

    /// How a pair's scores are masked.
    public enum PairKind: Sendable, Hashable {
        /// Every score kept.
        case full
        /// The built-in causal mask on a diagonal pair (query and key chunk are the same rows).
        case causal
        /// Partly kept: the mask is evaluated at the pair's global positions.
        case masked
    }

    /// Attention of one of the rank's query chunks to rows of one of the source's chunks.
    public struct Pair: Sendable, Hashable {
        /// 0 or 1: which of the rank's chunks the queries are.
        public let queryChunk: Int
        /// 0 or 1: which of the source's chunks the keys come from.
        public let keyChunk: Int
        /// How its scores are masked.
        public let kind: PairKind
    }

    /// One rank's work at one step.
    public struct Step: Sendable, Hashable {
        /// The rank whose keys and values this step reads (the rank itself at step 0).
        public let source: Int
        /// Per source chunk (0 and 1), the rows of that chunk this step reads; empty when it reads none.
        public let keyRows: [Range<Int>]
        /// The pairs computed, in the fixed order their results are merged: query chunk, then key chunk.
        public let pairs: [Pair]

        /// Whether the step computes nothing (and receives nothing).
        public var isEmpty: Bool { pairs.isEmpty }
    }

    /// Ranks in the group.
    public let worldSize: Int
    /// Rows per chunk: the sequence length over `2 × worldSize`.
    public let chunkLength: Int
    /// How the sequence is dealt to ranks.
    public let layout: ContextParallelLayout
    /// `steps[rank][step]`.
    public let steps: [[Step]]

    /// The global chunk of `rank`'s local chunk `index` (0 or 1).
    public func globalChunk(rank: Int, local index: Int) -> Int {
        layout.chunks(rank: rank, worldSize: worldSize)[index]
    }

    /// The rank `rank` receives from at `step`, and the one it sends its own rows to.
    public func peers(rank: Int, step: Int) -> (source: Int, destination: Int) {
        ((rank - step % worldSize + worldSize) % worldSize, (rank + step) % worldSize)
    }

    /// Rows `rank` receives at `step` (both chunks), which are also the rows whose gradients it sends back.
    public func rowsReceived(rank: Int, step: Int) -> Int {
        step == 0 ? 0 : steps[rank][step].keyRows.map(\.count).reduce(0, +)
    }

    /// The schedule of attention over a whole sequence of `shape` with `options` on `worldSize` ranks: what a
    /// ``ContextParallelPlan`` runs, available without GPUs to plan and inspect a run.
    /// - Throws: as ``ContextParallelPlan/init(shape:options:group:layout:headGroups:includesBackward:)`` for the shape
    ///   and options.
    public init(
        shape: AttentionShape, options: AttentionOptions = .init(), worldSize: Int, layout: ContextParallelLayout = .zigzag
    ) throws {
        try self.init(AttentionProblem(shape: shape, options: options), worldSize: worldSize, layout: layout)
    }

    /// Builds the schedule of `problem` (a self-attention problem over the whole sequence) on `worldSize` ranks.
    /// - Throws: ``ModError`` when the mask leaves its domain; ``FlexAttentionError`` for sizes that do not divide.
    init(_ problem: AttentionProblem, worldSize: Int, layout: ContextParallelLayout) throws {
        let shape = problem.shape
        let length = shape.queryLength
        guard shape.queryLength == shape.keyLength else {
            throw FlexAttentionError.invalidArgument(
                "context parallelism shards one sequence: queries and keys must have one length, not"
                    + " \(shape.queryLength) and \(shape.keyLength)")
        }
        guard worldSize > 0, length % (2 * worldSize * Self.rowGranularity) == 0 else {
            throw FlexAttentionError.invalidArgument(
                "context parallelism over \(worldSize) ranks needs a sequence length that is a multiple of"
                    + " 2 × \(worldSize) × \(Self.rowGranularity) = \(2 * worldSize * Self.rowGranularity), not \(length)")
        }
        (self.worldSize, self.layout, chunkLength) = (worldSize, layout, length / (2 * worldSize))
        let census = try PairCensus(problem)
        var steps = [[Step]]()
        for rank in 0..<worldSize {
            var rankSteps = [Step]()
            for step in 0..<worldSize {
                let source = (rank - step + worldSize) % worldSize
                let queries = layout.chunks(rank: rank, worldSize: worldSize)
                let keys = layout.chunks(rank: source, worldSize: worldSize)
                rankSteps.append(
                    try Self.step(source: source, queryChunks: queries, keyChunks: keys, census: census,
                                  chunk: length / (2 * worldSize), causalOnly: problem.isCausalOnly))
            }
            steps.append(rankSteps)
        }
        self.steps = steps
    }

    private static func step(
        source: Int, queryChunks: [Int], keyChunks: [Int], census: PairCensus, chunk: Int, causalOnly: Bool
    ) throws -> Step {
        func rows(_ global: Int) -> Range<Int> { global * chunk..<(global + 1) * chunk }
        var keyRows = [Range<Int>]()
        for keyChunk in keyChunks {
            // The hull of the rows any query chunk keeps, in whole runs of rowGranularity.
            var hull: Range<Int>? = nil
            for queryChunk in queryChunks {
                guard let used = try census.keptKeyRows(queries: rows(queryChunk), keys: rows(keyChunk)) else { continue }
                hull = hull.map { min($0.lowerBound, used.lowerBound)..<max($0.upperBound, used.upperBound) } ?? used
            }
            keyRows.append(hull.map { ($0.lowerBound - keyChunk * chunk)..<($0.upperBound - keyChunk * chunk) } ?? 0..<0)
        }
        var pairs = [Pair]()
        for (q, queryChunk) in queryChunks.enumerated() {
            for (k, keyChunk) in keyChunks.enumerated() where !keyRows[k].isEmpty {
                let keys = keyChunk * chunk + keyRows[k].lowerBound..<keyChunk * chunk + keyRows[k].upperBound
                let kept = try census.census(queries: rows(queryChunk), keys: keys)
                guard kept.canBeTrue else { continue }
                let kind: PairKind = !kept.canBeFalse ? .full
                    : causalOnly && queryChunk == keyChunk && keys == rows(keyChunk) ? .causal : .masked
                pairs.append(Pair(queryChunk: q, keyChunk: k, kind: kind))
            }
        }
        return Step(source: source, keyRows: keyRows, pairs: pairs)
    }
}

/// Whether a mask keeps all, some or none of a rectangle of the whole score matrix, over every batch and head it
/// depends on: ``MaskRegionAnalysis`` per (batch, head), which decides exactly. Without a mask everything is kept.
private final class PairCensus {
    private var analysis: MaskRegionAnalysis?
    private let batches: Range<Int>, heads: Range<Int>

    init(_ problem: AttentionProblem) throws {
        guard let mask = problem.mask else {
            analysis = nil
            (batches, heads) = (0..<1, 0..<1)
            return
        }
        let evaluator = try MaskTileEvaluator(
            mask, queryLength: problem.shape.queryLength, keyLength: problem.shape.keyLength)
        analysis = MaskRegionAnalysis(evaluator, extremes: evaluator.program.tables.map(TableExtremes.init))
        batches = 0..<(mask.expression.reads(.b) ? problem.shape.batch : 1)
        heads = 0..<(mask.expression.reads(.h) ? problem.shape.queryHeads : 1)
    }

    func census(queries: Range<Int>, keys: Range<Int>) throws -> BoolSet {
        var result = BoolSet(canBeFalse: false, canBeTrue: analysis == nil)
        for batch in batches {
            for head in heads {
                let region = ScoreRegion(batches: batch..<batch + 1, heads: head..<head + 1, queries: queries, keys: keys)
                guard let found = try analysis?.census(region) else { return result }
                result = result.union(found)
                if result == .either { return result }
            }
        }
        return result
    }

    /// The keys some query of `queries` keeps, from the first run of ``ContextParallelSchedule/rowGranularity`` keys
    /// with a kept score to the end of the last; nil when none is kept.
    func keptKeyRows(queries: Range<Int>, keys: Range<Int>) throws -> Range<Int>? {
        let run = ContextParallelSchedule.rowGranularity
        func block(_ index: Int) -> Range<Int> { keys.lowerBound + index * run..<keys.lowerBound + (index + 1) * run }
        guard try census(queries: queries, keys: keys).canBeTrue else { return nil }
        var (first, last) = (0, keys.count / run - 1)
        while try !census(queries: queries, keys: block(first)).canBeTrue { first += 1 }
        while try !census(queries: queries, keys: block(last)).canBeTrue { last -= 1 }
        return block(first).lowerBound..<block(last).upperBound
    }
}
