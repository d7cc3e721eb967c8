/// One attention problem as every backend takes it, built and checked once: the shape, the scale resolved, the
/// causal flag folded into the mask, and the score mod checked over the shape's domain. ``Attention`` hands it to
/// the CPU loops and the CUDA plan alike, so they cannot disagree on what the options mean.
struct AttentionProblem: Sendable {
    let shape: AttentionShape
    /// `scale`, or `1/√D`.
    let scale: Float
    /// `causal && mask` as one mask (the causal part aligned as the options say); nil when every score is kept.
    let mask: MaskMod?
    /// The options' block mask when it is exactly ``mask`` over this shape (no causal folded in): its analysis is
    /// reused rather than redone.
    let blockMask: BlockMask?
    /// Whether ``mask`` is the built-in causal alone, which the CPU loops skip and mask without evaluating a mod.
    let isCausalOnly: Bool
    let scoreMod: ScoreMod?
    /// The options it was made from.
    var options: AttentionOptions

    /// - Throws: ``FlexAttentionError/invalidScale(_:)`` for a scale that is not finite,
    ///   ``FlexAttentionError/invalidArgument(_:)`` for a block mask of another shape or mask; ``ModError`` when the
    ///   score mod indexes a table outside its bounds or divides an Int by zero anywhere in `shape`'s domain (the
    ///   mask is checked over the domain when its block mask is built, on both backends).
    init(shape: AttentionShape, options: AttentionOptions) throws {
        self.shape = shape
        self.options = options
        scale = try shape.resolvedScale(options.scale)
        if let sinks = options.sinks { try AttentionSinks.check(sinks, queryHeads: shape.queryHeads) }
        if !shape.isEmpty {  // an empty domain has nothing to check
            try options.scoreMod?.checkIndices(
                batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength, keyLength: shape.keyLength)
        }
        // Bottom-right is top-left when Sq = Skv: keep the built-in causal, which the CPU loops run faster.
        let causal: MaskMod = options.causalAlignment == .topLeft || shape.queryLength == shape.keyLength
            ? .causal : .causalBottomRight
        let given = try Self.givenMask(options, shape: shape)
        mask = options.isCausal ? given.map { causal && $0 } ?? causal : given
        blockMask = options.isCausal ? nil : options.blockMask
        isCausalOnly = options.isCausal && given == nil && causal == .causal
        scoreMod = options.scoreMod
    }

    /// The same problem without attention sinks, for a backend whose result the caller joins the sinks to itself.
    var withoutSinks: AttentionProblem {
        var problem = self
        problem.options.sinks = nil
        return problem
    }

    /// The options' mask: ``AttentionOptions/mask``, or the block mask's after checking it fits `shape`.
    private static func givenMask(_ options: AttentionOptions, shape: AttentionShape) throws -> MaskMod? {
        guard let blockMask = options.blockMask else { return options.mask }
        guard options.mask == nil || options.mask == blockMask.mask else {
            throw FlexAttentionError.invalidArgument("the options' mask and block mask differ; give one of them")
        }
        guard blockMask.covers(shape) else {
            throw FlexAttentionError.invalidArgument(
                "the block mask covers batch \(blockMask.batch), heads \(blockMask.heads), \(blockMask.queryLength) queries"
                    + " and \(blockMask.keyLength) keys, not the inputs' \(shape)")
        }
        return blockMask.mask
    }
}

extension AttentionOptions {
    /// Checks these options against `shape` as every call of that shape does (scale, sinks, the score mod over the
    /// domain, the block mask's cover), running nothing: for a caller that prepares once and calls many times, such
    /// as the C interface's `fa_attention_create`.
    /// - Throws: as ``Attention/forward(query:key:value:options:outputDType:)`` for these options.
    package func check(for shape: AttentionShape) throws {
        _ = try AttentionProblem(shape: shape, options: self)
    }
}
