/// A packed attention call checked and split into one ``AttentionProblem`` per sequence, before anything runs: every
/// error the call can raise from its inputs (sizes, options, a score mod leaving some sequence's domain) is raised
/// here.
///
/// Each sequence is run as a problem of batch 1 with its own lengths, so `q` and `kv` are positions within the
/// sequence, `q_len` and `kv_len` its own counts, and causal alignment uses them. The mods see the sequence's index
/// as `b` through ``MaskMod/fixingBatch(_:)`` and ``ScoreMod/fixingBatch(_:)``.
struct PackedProblem: Sendable {
    /// One sequence with queries and keys: where its rows are, and its problem.
    struct Sequence: Sendable {
        let index: Int
        let queries: Range<Int>
        let keys: Range<Int>
        let problem: AttentionProblem
    }

    let sequences: PackedSequences
    /// The whole pack as one sequence of batch 1: heads, head dims and dtype, with the total lengths.
    let whole: AttentionShape
    let options: AttentionOptions
    /// The sequences that have queries and keys, in order; the others compute nothing.
    let runs: [Sequence]

    /// - Parameters:
    ///   - shapes: query `[totalQ, Hq, D]`, key `[totalK, Hkv, D]` and value `[totalK, Hkv, Dv]`.
    ///   - dtypes: theirs, in the same order.
    ///   - options: the call's options, sinks included (checked here, left out of the sequences' problems).
    init(shapes: [[Int]], dtypes: [DType], sequences: PackedSequences, options: AttentionOptions) throws {
        for (name, shape) in zip(["query", "key", "value"], shapes) where shape.count != 3 {
            throw FlexAttentionError.wrongRank(tensor: name, expected: 3, actual: shape.count)
        }
        whole = try AttentionShape(shapes: shapes.map { [1, $0[1], $0[0], $0[2]] }, dtypes: dtypes)
        for (name, total, rows) in [("query", sequences.totalQueries, whole.queryLength),
                                    ("key", sequences.totalKeys, whole.keyLength)] where total != rows {
            throw FlexAttentionError.mismatchedDimension(
                name: "rows (the last \(name) offset)", expected: total, actual: rows, tensor: name)
        }
        guard options.blockMask == nil else {
            throw FlexAttentionError.invalidArgument(
                "a block mask cannot describe packed sequences; give its mask as options.mask, which each sequence"
                    + " sees with its own b, q and kv")
        }
        if let sinks = options.sinks { try AttentionSinks.check(sinks, queryHeads: whole.queryHeads) }
        _ = try whole.resolvedScale(options.scale)
        try options.mask?.validate()
        try options.scoreMod?.validate()
        var sequenceOptions = options
        sequenceOptions.sinks = nil  // joined to the packed result, not to each sequence's
        var runs: [Sequence] = []
        for index in 0..<sequences.count {
            let (queries, keys) = (sequences.queryRange(index), sequences.keyRange(index))
            guard !queries.isEmpty, !keys.isEmpty else { continue }
            sequenceOptions.mask = options.mask?.fixingBatch(index)
            sequenceOptions.scoreMod = options.scoreMod?.fixingBatch(index)
            let shape = try AttentionShape(
                batch: 1, queryHeads: whole.queryHeads, keyValueHeads: whole.keyValueHeads, queryLength: queries.count,
                keyLength: keys.count, headDim: whole.headDim, valueDim: whole.valueDim, dtype: whole.dtype)
            runs.append(Sequence(
                index: index, queries: queries, keys: keys,
                problem: try AttentionProblem(shape: shape, options: sequenceOptions)))
        }
        (self.sequences, self.options, self.runs) = (sequences, options, runs)
    }

    init(query: Tensor, key: Tensor, value: Tensor, sequences: PackedSequences, options: AttentionOptions) throws {
        try self.init(
            shapes: [query.shape, key.shape, value.shape], dtypes: [query.dtype, key.dtype, value.dtype],
            sequences: sequences, options: options)
    }

    /// `O`'s shape, `[totalQ, Hq, Dv]`.
    var outputShape: [Int] { [whole.queryLength, whole.queryHeads, whole.valueDim] }
    /// The log-sum-exp's shape, `[Hq, totalQ]` (FlashAttention's varlen layout).
    var logSumExpShape: [Int] { [whole.queryHeads, whole.queryLength] }
    /// Q's (and dQ's) shape.
    var queryShape: [Int] { [whole.queryLength, whole.queryHeads, whole.headDim] }
    /// K's (and dK's) shape.
    var keyShape: [Int] { [whole.keyLength, whole.keyValueHeads, whole.headDim] }
    /// V's (and dV's) shape.
    var valueShape: [Int] { [whole.keyLength, whole.keyValueHeads, whole.valueDim] }

    /// Whether a sequence has queries but no keys: its rows keep nothing, so O = 0 and LSE = −∞ there.
    var hasQueriesWithoutKeys: Bool {
        (0..<sequences.count).contains { !sequences.queryRange($0).isEmpty && sequences.keyRange($0).isEmpty }
    }

    /// The score mod's Float tables, whose gradients are summed over the sequences.
    var gradientTables: [ModTable] {
        options.scoreMod?.expression.arguments.tables.filter { $0.elementType == .float } ?? []
    }
}
