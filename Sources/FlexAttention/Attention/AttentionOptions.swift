/// What to compute besides plain softmax attention.
public struct AttentionOptions: Sendable, Equatable {
    /// Multiplies `q · k`; `nil` means `1 / √D`.
    public var scale: Float?
    /// Keep only the keys at or before each query, skipping the tiles that removes entirely; which key is "at" a
    /// query is ``causalAlignment``'s choice. Combined with ``mask`` by logical and.
    public var isCausal: Bool
    /// How ``isCausal`` lines queries up with keys when `Sq ≠ Skv`. The default, ``CausalAlignment/topLeft``
    /// (`q >= kv`, PyTorch SDPA's `is_causal`), lets a single decoding query see only key 0;
    /// ``CausalAlignment/bottomRight`` (`q + Skv − Sq >= kv`) is what decoding and chunked prefill against a cache
    /// of keys want. The two agree when `Sq = Skv`.
    public var causalAlignment: CausalAlignment
    /// Which scores to keep, as a traced or parsed expression of `b, h, q, kv` (`h` is the query head). Blocks it
    /// removes entirely are skipped; it is evaluated only inside blocks it removes in part. Each call analyses it
    /// anew; give ``blockMask`` instead to analyse it once for many calls.
    public var mask: MaskMod?
    /// The mask already analysed into blocks, built once and shared by every call and layer of its shape
    /// (PyTorch's `create_block_mask`); its ``BlockMask/mask`` is the mask applied, so ``mask`` must be nil or the
    /// same. It must cover the inputs' lengths, and their batch and query heads where the mask reads `b` or `h`.
    public var blockMask: BlockMask?
    /// A change to each score before the mask, in natural units (`scale · q·k`). Float tables it reads get
    /// gradients in ``AttentionGradients/tableGradients``.
    public var scoreMod: ScoreMod?
    /// Attention sinks: one logit per query head that joins every row's softmax denominator and carries no value
    /// (gpt-oss), so a row may give little weight to every key. Finite, or −∞ for a head without one; the
    /// log-sum-exp includes them, and backward returns their gradient (``AttentionGradients/sinkGradient``, or
    /// ``DeviceAttentionGradients/sinkGradient`` from an ``AttentionPlan``).
    public var sinks: [Float]?
    /// Whether the backward pass's gradients have the same bits on every run (the default). `false` lets a Hopper
    /// GPU add dQ's partial sums in whatever order its thread blocks reach them, as cuDNN's and FlashAttention-3's
    /// backwards do by default, where that is faster: above D = 128, by 9–11% (BENCHMARKS.md). dQ's last bits may
    /// then differ between runs; dK, dV, the sinks' and the Float tables' gradients stay deterministic. Up to
    /// D = 128, on the CPU and on other GPUs the gradients are deterministic either way.
    public var deterministicGradients: Bool

    /// Options for attention calls; the defaults give plain softmax attention with scale `1 / √D`.
    /// - Parameters:
    ///   - scale: multiplies `q · k`; `nil` means `1 / √D`.
    ///   - isCausal: keep only the keys at or before each query.
    ///   - causalAlignment: top-left (`q >= kv`, the default) or bottom-right (`q + Skv − Sq >= kv`).
    ///   - mask: which scores to keep; all when `nil`.
    ///   - blockMask: the mask analysed once, for reuse across calls (instead of `mask`).
    ///   - scoreMod: how to change each score; unchanged when `nil`.
    ///   - sinks: one sink logit per query head; none when `nil`.
    ///   - deterministicGradients: whether gradients must have the same bits on every run; `false` lets a Hopper add
    ///     dQ in any order where that is faster (above D = 128).
    public init(
        scale: Float? = nil, isCausal: Bool = false, causalAlignment: CausalAlignment = .topLeft, mask: MaskMod? = nil,
        blockMask: BlockMask? = nil, scoreMod: ScoreMod? = nil, sinks: [Float]? = nil, deterministicGradients: Bool = true
    ) {
        self.scale = scale
        self.isCausal = isCausal
        self.causalAlignment = causalAlignment
        self.mask = mask
        self.blockMask = blockMask
        self.scoreMod = scoreMod
        self.sinks = sinks
        self.deterministicGradients = deterministicGradients
    }
}

/// Which key a causal mask lines each query up with, when there are not as many queries as keys.
public enum CausalAlignment: Sendable, Hashable {
    /// Query `q` sees keys `0...q` (``MaskMod/causal``): the first query is aligned with the first key.
    case topLeft
    /// Query `q` sees keys `0...q + Skv − Sq` (``MaskMod/causalBottomRight``): the last query is aligned with the
    /// last key, as when new queries follow a cache of keys.
    case bottomRight
}
