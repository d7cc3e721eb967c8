/// One decoding step as every backend takes it, built and checked once: `Sq` new queries per sequence against
/// each sequence's cached tokens, the queries at the end of their sequence.
///
/// Query `i` of sequence `b` is at position `L[b] − Sq + i` and sees positions `0..<L[b]`; mods see those
/// absolute positions as `q` and `kv`, and `q_len = kv_len = L[b]`. Causal is `q >= kv` on them, so with the
/// queries at the end both causal alignments coincide.
struct DecodeProblem: Sendable {
    let batch: Int
    let queryHeads: Int
    let kvHeads: Int
    /// New queries per sequence.
    let queryLength: Int
    let headDim: Int
    let valueDim: Int
    /// Tokens one sequence's cache can hold.
    let capacity: Int
    /// Tokens in each sequence, the new ones included.
    let lengths: [Int]
    /// `scale`, or `1/√D`.
    let scale: Float
    /// The options' mask with causal folded in; nil when every cached token is seen.
    let mask: MaskMod?
    let scoreMod: ScoreMod?
    /// One logit per query head joined to every row's denominator; nil for none.
    let sinks: [Float]?

    var groupSize: Int { queryHeads / kvHeads }

    /// - Parameters:
    ///   - query: the queries' shape, `[B, Hq, Sq, D]`.
    ///   - cache: the cache's lengths, capacity and pages, with its heads and dims.
    /// - Throws: ``FlexAttentionError`` for a query that does not fit the cache, a sequence holding fewer tokens
    ///   than `Sq`, a block mask (decoding evaluates its mask per sequence), bad sinks or scale; ``ModError`` when a
    ///   mod reads a table outside its bounds or divides by zero anywhere in the cache's domain.
    init(query: [Int], cache: KVCacheIndex, kvHeads: Int, headDim: Int, valueDim: Int, options: AttentionOptions)
        throws
    {
        guard query.count == 4 else { throw FlexAttentionError.wrongRank(tensor: "query", expected: 4, actual: query.count) }
        let shape = try AttentionShape(
            batch: query[0], queryHeads: query[1], keyValueHeads: kvHeads, queryLength: query[2],
            keyLength: cache.capacity, headDim: headDim, valueDim: valueDim, dtype: .float32)
        guard query[3] == headDim else {
            throw FlexAttentionError.mismatchedDimension(name: "head dim", expected: headDim, actual: query[3], tensor: "query")
        }
        guard query[0] == cache.batch else {
            throw FlexAttentionError.mismatchedDimension(name: "batch", expected: cache.batch, actual: query[0], tensor: "query")
        }
        guard query[2] > 0 else { throw FlexAttentionError.nonPositiveDimension(tensor: "query", shape: query) }
        try Self.checkLengths(cache.lengths, queryLength: query[2])
        guard options.blockMask == nil else {
            throw FlexAttentionError.invalidArgument(
                "decoding evaluates the mask per sequence; give it as `mask`, not as a block mask")
        }
        if let sinks = options.sinks { try AttentionSinks.check(sinks, queryHeads: shape.queryHeads) }
        scale = try shape.resolvedScale(options.scale)
        let mask = options.isCausal ? options.mask.map { .causal && $0 } ?? .causal : options.mask
        // q_len and kv_len vary per sequence up to the capacity; the whole square is checked.
        try mask?.checkIndices(batch: shape.batch, heads: shape.queryHeads, queryLength: cache.capacity, keyLength: cache.capacity)
        try options.scoreMod?.checkIndices(
            batch: shape.batch, heads: shape.queryHeads, queryLength: cache.capacity, keyLength: cache.capacity)
        (batch, queryHeads, self.kvHeads, queryLength) = (shape.batch, shape.queryHeads, kvHeads, shape.queryLength)
        (self.headDim, self.valueDim, capacity, lengths) = (headDim, valueDim, cache.capacity, cache.lengths)
        self.mask = mask
        scoreMod = options.scoreMod
        sinks = options.sinks
    }

    /// Checks that every sequence already holds its `queryLength` new tokens (a device plan repeats this per call,
    /// since its cache's lengths change between calls).
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` naming the first sequence that holds fewer.
    static func checkLengths(_ lengths: [Int], queryLength: Int) throws {
        if let b = lengths.indices.first(where: { lengths[$0] < queryLength }) {
            throw FlexAttentionError.invalidArgument(
                "sequence \(b) holds \(lengths[b]) tokens, fewer than the \(queryLength) new queries; append their"
                    + " keys and values to the cache first")
        }
    }

    /// The absolute position of query `i` of sequence `b`.
    func queryPosition(sequence b: Int, query i: Int) -> Int { lengths[b] - queryLength + i }
}
