/// The options' masking and score mod, prepared for the CPU loops of one problem shape.
struct CPUMods: Sendable {
    /// Which blocks to visit and how to mask partial ones.
    let masking: any TileMasking
    /// The score mod, compiled for tiles; `nil` when scores are left as they are.
    let scoreModifier: ScoreModTileEvaluator?

    /// - Parameter includesGradients: whether the score mod is prepared for backward (its derivatives built).
    /// - Throws: ``ModError`` when the mask or score mod is malformed or indexes a table outside its bounds
    ///   anywhere in the problem's domain.
    init(_ options: AttentionOptions, shape: AttentionShape, includesGradients: Bool) throws {
        switch (options.mask, options.isCausal) {
        case (nil, false): masking = NoMasking()
        case (nil, true): masking = CausalMasking()
        case let (mask?, isCausal):
            masking = try BlockMask(
                isCausal ? MaskMod.causal && mask : mask, batch: shape.batch, heads: shape.queryHeads,
                queryLength: shape.queryLength, keyLength: shape.keyLength, queryBlockSize: CPUTile.queries,
                keyBlockSize: CPUTile.keys)
        }
        if let scoreMod = options.scoreMod {
            try scoreMod.checkIndices(
                batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                keyLength: shape.keyLength)
            scoreModifier = try ScoreModTileEvaluator(
                scoreMod, queryLength: shape.queryLength, keyLength: shape.keyLength, includesGradients: includesGradients)
        } else {
            scoreModifier = nil
        }
    }

    /// What Q is multiplied by before the score GEMM: the scores come out in base-2 units directly, or in
    /// natural units when a score mod must see them first (they are converted after it runs).
    func queryFactor(scale: Float) -> Float { scoreModifier == nil ? scale * .log2e : scale }
}
