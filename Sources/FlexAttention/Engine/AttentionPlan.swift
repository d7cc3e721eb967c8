import Synchronization

/// Attention on device-resident tensors, prepared once and called many times: FlexAttention's
/// `create_block_mask` and compiled `flex_attention` in one object.
///
/// A plan fixes a problem's sizes, dtype and options. Making it compiles (or finds) the kernels, emits the mods, builds
/// the block mask at each kernel's block sizes and uploads it with the mods' constants and tables. Every call after
/// that only checks its tensors and queues kernels on the caller's stream: it never synchronises, never allocates
/// with a synchronising `cuMemAlloc`, and never regenerates or hashes kernel source. Layers that share a shape and
/// mask share one plan.
///
/// ```swift
/// let gpu = try CUDADevice.open(0)
/// let stream = try CUDAStream(device: gpu)
/// let shape = try AttentionShape(batch: 2, queryHeads: 16, keyValueHeads: 4, queryLength: 8192, headDim: 128,
///                                dtype: .bfloat16)
/// let plan = try AttentionPlan(shape: shape, options: AttentionOptions(isCausal: true), device: gpu)
/// let result = try plan.forward(query: q, key: k, value: v, on: stream)          // queued; returns at once
/// let grads = try plan.backward(query: q, key: k, value: v, forward: result, outputGradient: dO, on: stream)
/// ```
///
/// Outputs a call allocates come from the device's stream-ordered memory pool on the call's stream, and are freed
/// on that stream when their last reference goes (see ``DeviceBuffer/init(device:byteCount:stream:)``). The variants
/// with output parameters allocate nothing the caller sees, so a whole training step can be captured in a
/// ``CUDAGraph`` and replayed.
///
/// Attention sinks (``AttentionOptions/sinks``) join each row's denominator in one more small kernel after the
/// forward kernel, so the forward returns the sink-adjusted `O` and log-sum-exp; the backward takes those, as it
/// takes any forward result, and also returns the sinks' gradient (``DeviceAttentionGradients/sinkGradient``).
/// The logits belong to the plan, so layers with sinks of their own make a plan each (the kernels are compiled
/// once and shared).
///
/// Errors are typed and raised before anything is queued. Unlike ``Attention``, the plan does not scan its inputs
/// for NaN and ±∞ (a scan would read every input once more): inputs are expected to be finite, masked positions
/// included, as in PyTorch's `flex_attention`. A non-finite element in a position the mask removes may reach the
/// outputs of rows whose block it shares.
///
/// A plan may be used from any thread and on several streams at once; the order of calls on different streams is
/// the caller's to arrange, as for any CUDA work.
public final class AttentionPlan: Sendable {
    /// The device every tensor and stream of a call must be on.
    public let device: CUDADevice
    /// The sizes and dtype every call's tensors must have.
    public let shape: AttentionShape
    /// Scale, mask, score mod and sinks, as the plan was made (``updateScoreMod(_:on:)`` and ``updateSinks(_:on:)``
    /// change the values the kernels read, not this).
    public let options: AttentionOptions
    /// Whether the plan was made with its backward kernels.
    public let includesBackward: Bool

    let sizes: AttentionSizes
    let mods: PlanMods
    /// The sinks' logits on the device and their kernels; nil without sinks.
    let sinks: SinkProgram?
    let tensorMaps = TensorMapCache()
    private let cache: KernelCache
    /// Whether the device reads inputs through TMA tensor maps where it can (a Hopper with a driver that encodes them).
    private let prefersTensorMaps: Bool
    /// The forward and backward programs, by whether they read tensor maps; the preferred pair is made with the plan,
    /// the other when a call's tensors first need it.
    private let programs = Mutex<[Bool: Programs]>([:])
    /// The side stream and events the backward forks dQ onto; held while they are used, so calls from several
    /// threads cannot interleave their records and waits.
    let backwardFork: Mutex<BackwardFork?>
    /// The kernel turning fixed-point table-gradient sums into Float32; nil without a backward that sums them.
    let tableGradientFinish: CUDAFunction?

    struct Programs {
        let forward: ForwardProgram
        let backward: BackwardProgram?
    }

    /// Prepares attention of `shape` with `options` on `device`.
    /// - Parameters:
    ///   - shape: the sizes and dtype every call's tensors must have.
    ///   - options: scale, causality, mask or block mask, score mod, and attention sinks (one logit per query head,
    ///     uploaded now; ``updateSinks(_:on:)`` replaces them).
    ///   - device: the GPU the kernels are compiled for and run on.
    ///   - includesBackward: whether to prepare the backward kernels too (compiling them takes seconds the first
    ///     time; the disk cache keeps them for later processes).
    /// - Throws: ``FlexAttentionError`` or ``ModError`` for options that do not fit the shape (a scale that is not
    ///   finite, a score mod indexing past a table, a head dim no kernel fits, a sink count other than the query
    ///   heads' or a sink that is NaN or +∞); ``CUDAError`` when compilation or the device fails.
    public convenience init(
        shape: AttentionShape, options: AttentionOptions = .init(), device: CUDADevice, includesBackward: Bool = true
    ) throws {
        try self.init(
            AttentionProblem(shape: shape, options: options), device: device, includesBackward: includesBackward,
            cache: Self.processCache.get())
    }

    init(_ problem: AttentionProblem, device: CUDADevice, includesBackward: Bool, cache: KernelCache) throws {
        guard !problem.shape.isEmpty else {  // device tensors cannot be empty
            throw FlexAttentionError.invalidArgument("an AttentionPlan needs queries and keys, not \(problem.shape)")
        }
        sizes = AttentionSizes(problem.shape, scale: problem.scale)
        (self.device, shape, options, self.includesBackward, self.cache) =
            (device, problem.shape, problem.options, includesBackward, cache)
        mods = try PlanMods(problem, includesBackward: includesBackward, device: device)
        sinks = try problem.options.sinks.map {  // checked by AttentionProblem
            try SinkProgram($0, shape: problem.shape, includesBackward: includesBackward, cache: cache, device: device)
        }
        prefersTensorMaps = device.architecture == .sm90a && device.api.cuTensorMapEncodeTiled != nil
        backwardFork = Mutex(includesBackward ? try BackwardFork(device: device) : nil)
        tableGradientFinish = includesBackward && mods.backwardScoreFunction?.tableGradientDefinition != nil
            ? try cache.function(for: TableGradientKernel(), on: device) : nil
        _ = try programs(tensorMaps: prefersTensorMaps)
    }

    /// One kernel cache per process, so a kernel compiled for one plan serves the next.
    static let processCache = Result { try KernelCache(compiler: NVRTC()) }

    /// The programs for inputs that TMA can (`tensorMaps`) or cannot read, made on first use.
    func programs(tensorMaps: Bool) throws -> Programs {
        let key = prefersTensorMaps && tensorMaps
        return try programs.withLock { programs in
            if let made = programs[key] { return made }
            let made = Programs(
                forward: try ForwardProgram(
                    shape: shape, scale: sizes.scale, mods: mods, tensorMaps: key, cache: cache, device: device),
                backward: includesBackward
                    ? try BackwardProgram(
                        shape: shape, mods: mods, tensorMaps: key, deterministic: options.deterministicGradients, cache: cache,
                        device: device)
                    : nil)
            programs[key] = made
            return made
        }
    }

    /// The programs for these inputs: the preferred pair when TMA can read them all.
    func programs(for tensors: [DeviceTensor]) throws -> Programs {
        try programs(tensorMaps: tensors.allSatisfy(CUDATensorMap.canDescribe))
    }

    /// Replaces the score mod's constants and tables with `scoreMod`'s, without recompiling: calls queued on
    /// `stream` after this one (and graphs launched on it that were captured from this plan) read the new values.
    ///
    /// `scoreMod` must have the plan's score mod's structure (equal ``ModExpression/structuralKey``) and tables of
    /// the same sizes: a different soft-cap, new bias values. A mask decides which blocks are skipped, so a new mask
    /// needs a new plan (which finds the compiled kernels again and only rebuilds the block mask).
    ///
    /// The values are copied from host memory on `stream` (a pageable copy, which graph capture does not allow: update
    /// between replays, not inside a capture). Work on other streams that reads the plan must be ordered by the
    /// caller.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when the structure or a table size differs, ``ModError`` when a new
    ///   table is indexed past its end; nothing is copied then.
    public func updateScoreMod(_ scoreMod: ScoreMod, on stream: CUDAStream) throws {
        guard let current = options.scoreMod, let arguments = mods.scoreArguments,
              current.expression.structuralKey == scoreMod.expression.structuralKey
        else {
            throw CUDAError.invalidArgument(
                "updateScoreMod needs a score mod of the plan's structure (\(options.scoreMod?.description ?? "none")),"
                    + " not \(scoreMod)")
        }
        try check(stream: stream)
        try scoreMod.checkIndices(
            batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength, keyLength: shape.keyLength)
        try arguments.update(scoreMod.expression.arguments, stream: stream)
    }
}

/// The side stream and two events a backward pass forks dQ onto and joins back from.
struct BackwardFork {
    let side: CUDAStream
    let forked: CUDAEvent
    let joined: CUDAEvent

    init(device: CUDADevice) throws {
        side = try CUDAStream(device: device)
        forked = try CUDAEvent(device: device, timing: false)
        joined = try CUDAEvent(device: device, timing: false)
    }
}

extension AttentionPlan {
    /// The kernels a call on these tensors' way of reading runs, in launch order (for tooling that reports their
    /// resources).
    package func kernelFunctions(tensorMaps: Bool) throws -> [CUDAFunction] {
        let made = try programs(tensorMaps: tensorMaps)
        let backward = made.backward.map { [$0.delta.function] + (sinks?.gradient.map { [$0.function] } ?? [])
            + [$0.keyValue.function] + [$0.query?.function, $0.queryFinish?.function].compactMap { $0 } } ?? []
        return [made.forward.kernel.function] + (sinks.map { [$0.forward.function] } ?? []) + backward
    }
}
