/// A problem's masking and score mod, prepared for the CPU loops.
struct CPUMods: Sendable {
    /// Which blocks to visit and how to mask partial ones.
    let masking: any TileMasking
    /// The score mod, compiled for tiles; `nil` when scores are left as they are.
    let scoreModifier: ScoreModTileEvaluator?

    /// - Parameter includesGradients: whether the score mod is prepared for backward (its derivatives built).
    /// - Throws: ``ModError`` when the mask or score mod is malformed, or the mask indexes a table outside its
    ///   bounds anywhere in the problem's domain (``Attention`` checks the score mod's domain for every device).
    init(_ problem: AttentionProblem, includesGradients: Bool) throws {
        masking = try Self.masking(problem)
        scoreModifier = try problem.scoreMod.map {
            try ScoreModTileEvaluator(
                $0, queryLength: problem.shape.queryLength, keyLength: problem.shape.keyLength,
                includesGradients: includesGradients)
        }
    }

    /// The problem's mask as a masking: none, the built-in causal, or a ``BlockMask`` at the loops' tile size.
    /// - Throws: ``ModError`` when the mask is malformed or leaves its domain.
    static func masking(_ problem: AttentionProblem) throws -> any TileMasking {
        let shape = problem.shape
        switch problem.mask {
        case nil: return NoMasking()
        case _ where problem.isCausalOnly: return CausalMasking()
        case let mask?:
            if let blockMask = problem.blockMask {
                return try blockMask.atBlockSize(queryBlockSize: CPUTile.queries, keyBlockSize: CPUTile.keys, for: shape)
            }
            return try BlockMask(
                mask, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                keyLength: shape.keyLength, queryBlockSize: CPUTile.queries, keyBlockSize: CPUTile.keys)
        }
    }

    /// What Q is multiplied by before the score GEMM: the scores come out in base-2 units directly, or in
    /// natural units when a score mod must see them first (they are converted after it runs).
    func queryFactor(scale: Float) -> Float { scoreModifier == nil ? scale * .log2e : scale }
}
