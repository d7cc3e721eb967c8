/// One attention problem as every backend takes it, built and checked once: the shape, the scale resolved, the
/// causal flag folded into the mask, and the score mod checked over the shape's domain. ``Attention`` hands it to
/// the CPU loops and the CUDA plan alike, so they cannot disagree on what the options mean.
struct AttentionProblem: Sendable {
    let shape: AttentionShape
    /// `scale`, or `1/√D`.
    let scale: Float
    /// `causal && mask` as one mask (the causal part aligned as the options say); nil when every score is kept.
    let mask: MaskMod?
    /// Whether ``mask`` is the built-in causal alone, which the CPU loops skip and mask without evaluating a mod.
    let isCausalOnly: Bool
    let scoreMod: ScoreMod?
    /// The options it was made from.
    let options: AttentionOptions

    /// - Throws: ``FlexAttentionError/invalidScale(_:)`` for a scale that is not finite; ``ModError`` when the
    ///   score mod indexes a table outside its bounds or divides an Int by zero anywhere in `shape`'s domain (the
    ///   mask is checked over the domain when its block mask is built, on both backends).
    init(shape: AttentionShape, options: AttentionOptions) throws {
        self.shape = shape
        self.options = options
        scale = try shape.resolvedScale(options.scale)
        try options.scoreMod?.checkIndices(
            batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength, keyLength: shape.keyLength)
        // Bottom-right is top-left when Sq = Skv: keep the built-in causal, which the CPU loops run faster.
        let causal: MaskMod = options.causalAlignment == .topLeft || shape.queryLength == shape.keyLength
            ? .causal : .causalBottomRight
        mask = options.isCausal ? options.mask.map { causal && $0 } ?? causal : options.mask
        isCausalOnly = options.isCausal && options.mask == nil && causal == .causal
        scoreMod = options.scoreMod
    }
}
