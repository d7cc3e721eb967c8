/// What to compute besides plain softmax attention.
public struct AttentionOptions: Sendable {
    /// Multiplies `q · k`; `nil` means `1 / √D`.
    public var scale: Float?
    /// Keep only `q >= kv` (indices from 0, top-left aligned), skipping the tiles it removes entirely. Combined
    /// with ``mask`` by logical and.
    public var isCausal: Bool
    /// Which scores to keep, as a traced or parsed expression of `b, h, q, kv` (`h` is the query head). Blocks it
    /// removes entirely are skipped; it is evaluated only inside blocks it removes in part.
    public var mask: MaskMod?
    /// A change to each score before the mask, in natural units (`scale · q·k`). Float tables it reads get
    /// gradients in ``AttentionGradients/tableGradients``.
    public var scoreMod: ScoreMod?

    /// - Parameters:
    ///   - scale: multiplies `q · k`; `nil` means `1 / √D`.
    ///   - isCausal: keep only `q >= kv`.
    ///   - mask: which scores to keep; all when `nil`.
    ///   - scoreMod: how to change each score; unchanged when `nil`.
    public init(scale: Float? = nil, isCausal: Bool = false, mask: MaskMod? = nil, scoreMod: ScoreMod? = nil) {
        self.scale = scale
        self.isCausal = isCausal
        self.mask = mask
        self.scoreMod = scoreMod
    }
}

