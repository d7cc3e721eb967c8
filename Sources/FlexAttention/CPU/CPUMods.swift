/// The options' masking and score mod, prepared for the CPU loops of one problem shape.
struct CPUMods: Sendable {
    /// Which blocks to visit and how to mask partial ones.
    let masking: any TileMasking
    /// The score mod, compiled for tiles; `nil` when scores are left as they are.
    let scoreModifier: ScoreModTileEvaluator?

    /// - Parameter includesGradients: whether the score mod is prepared for backward (its derivatives built).
    /// - Throws: ``ModError`` when the mask or score mod is malformed, or the mask indexes a table outside its
    ///   bounds anywhere in the problem's domain (``Attention`` checks the score mod's domain for every device).
    init(_ options: AttentionOptions, shape: AttentionShape, includesGradients: Bool) throws {
        masking = try Self.masking(options, shape: shape)
        scoreModifier = try options.scoreMod.map {
            try ScoreModTileEvaluator(
                $0, queryLength: shape.queryLength, keyLength: shape.keyLength, includesGradients: includesGradients)
        }
    }

    /// The options' causal flag and mask as one masking: none, the built-in causal, or a ``BlockMask`` at the
    /// loops' tile size.
    /// - Throws: ``ModError`` when the mask is malformed or leaves its domain.
    static func masking(_ options: AttentionOptions, shape: AttentionShape) throws -> any TileMasking {
        switch (options.mask, options.effectiveMask) {
        case (_, nil): NoMasking()
        case (nil, _): CausalMasking()
        case let (_, mask?):
            try BlockMask(
                mask, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                keyLength: shape.keyLength, queryBlockSize: CPUTile.queries, keyBlockSize: CPUTile.keys)
        }
    }

    /// What Q is multiplied by before the score GEMM: the scores come out in base-2 units directly, or in
    /// natural units when a score mod must see them first (they are converted after it runs).
    func queryFactor(scale: Float) -> Float { scoreModifier == nil ? scale * .log2e : scale }
}
