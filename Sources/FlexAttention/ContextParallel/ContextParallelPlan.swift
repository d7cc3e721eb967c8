/// One rank's share of a context-parallel problem: its shard of Q, K and V, rows in the layout's order
/// (``ContextParallelLayout``).
public struct ContextParallelInputs: Sendable {
    /// `[B, Hq, 2·chunk, D]`, any strides.
    public var query: DeviceTensor
    /// `[B, Hkv, 2·chunk, D]`, any strides.
    public var key: DeviceTensor
    /// `[B, Hkv, 2·chunk, Dv]`, any strides.
    public var value: DeviceTensor

    /// A rank's shard.
    public init(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor) {
        (self.query, self.key, self.value) = (query, key, value)
    }
}

/// Attention over a sequence sharded across the GPUs of a ``ContextParallelGroup`` (ring attention): each rank holds
/// two chunks of Q, K and V, key/value rows travel between ranks over NCCL while the current ones compute, and the
/// partial results merge by their log-sum-exps.
///
/// Masks and score mods are written for the whole sequence and see global positions and lengths. The schedule
/// (``ContextParallelSchedule``), made once from the mask, skips every (query chunk, key chunk) pair the mask leaves
/// empty and sends only the key rows some pair keeps: a causal mask does half the pairs, a sliding window only
/// talks to neighbours and sends them a halo. Causal work is balanced by the zigzag layout.
///
/// ```swift
/// let gpus = try (0..<4).map { try CUDADevice.open($0) }
/// let group = try ContextParallelGroup(devices: gpus)                 // one process drives every GPU
/// let shape = try AttentionShape(batch: 1, queryHeads: 32, keyValueHeads: 8, queryLength: 262_144, headDim: 128,
///                                dtype: .bfloat16)                    // the whole sequence
/// let plan = try ContextParallelPlan(shape: shape, options: AttentionOptions(isCausal: true), group: group)
/// let outputs = try plan.forward(shards, on: streams)                // one entry per GPU, queued
/// let gradients = try plan.backward(shards, forward: outputs, outputGradients: dOs, on: streams)
/// ```
///
/// Every call is queued without a host synchronisation. Results are deterministic for a given rank count: merges,
/// and the sums of gradient pieces (in Float32), follow the schedule's fixed order.
///
/// Every rank must make its plan from the same shape, options and layout, and make the same calls in the same order:
/// NCCL pairs each send with the partner's receive. A call checks its tensors before it queues anything; a failure
/// after its transfers are queued (out of device memory part-way) aborts the group, whose queued transfers would
/// otherwise wait forever, and every later call on it throws ``NCCLError/broken(_:)``.
///
/// Memory: besides its inputs and outputs, a call holds Float32 accumulators of the outputs and two key/value
/// transfer buffers per rank. With ``headGroups`` > 1 the ring runs once per group of heads, which divides all of
/// these by the group count: the way to the longest sequence a set of GPUs holds.
public final class ContextParallelPlan: Sendable {
    /// The whole problem: `queryLength` is the global sequence length (self-attention, so keys have it too).
    public let shape: AttentionShape
    /// Scale, mask and score mod, written for global positions.
    public let options: AttentionOptions
    /// The GPUs and communicators.
    public let group: ContextParallelGroup
    /// How rows are dealt to ranks.
    public let layout: ContextParallelLayout
    /// The ring runs once per group of this many key/value heads' worth of heads, one group after the other.
    public let headGroups: Int
    /// Whether the plan was made with its backward.
    public let includesBackward: Bool
    /// Every rank's work and transfers.
    public let schedule: ContextParallelSchedule
    /// The shape of one rank's shard.
    public let shardShape: AttentionShape

    let problem: AttentionProblem
    /// The attention of each pair one group of heads computes: `[local rank][step][pair][head group]`.
    let pairPlans: [[[[AttentionPlan]]]]
    /// The stream each local rank communicates on (high priority).
    let communication: [CUDAStream]

    /// Prepares ring attention of `shape` (the whole sequence) with `options` over `group`.
    ///
    /// - Parameters:
    ///   - shape: the whole problem; `queryLength` = `keyLength`, a multiple of `2 × ranks × 128`.
    ///   - options: scale, causal, mask or block mask, score mod, as for one GPU and over global positions. Sinks
    ///     are not supported.
    ///   - group: the ranks; this process computes for ``ContextParallelGroup/ranks``.
    ///   - layout: how rows are dealt to ranks (zigzag balances causal work).
    ///   - headGroups: run the ring this many times, each over an equal share of the heads (divides the key/value
    ///     heads), to divide the memory of accumulators and transfer buffers by it.
    ///   - includesBackward: whether to prepare the backward kernels.
    /// - Throws: ``FlexAttentionError`` for shapes or options ring attention cannot take, ``ModError`` for a mod
    ///   that leaves the domain, ``CUDAError`` when compilation fails.
    public init(
        shape: AttentionShape, options: AttentionOptions = .init(), group: ContextParallelGroup,
        layout: ContextParallelLayout = .zigzag, headGroups: Int = 1, includesBackward: Bool = true
    ) throws {
        guard options.sinks == nil else {
            throw FlexAttentionError.invalidArgument("attention sinks are not supported with context parallelism")
        }
        guard headGroups > 0, shape.keyValueHeads % headGroups == 0 else {
            throw FlexAttentionError.invalidArgument(
                "headGroups must divide the \(shape.keyValueHeads) key/value heads, not be \(headGroups)")
        }
        problem = try AttentionProblem(shape: shape, options: options)
        schedule = try ContextParallelSchedule(problem, worldSize: group.worldSize, layout: layout)
        (self.shape, self.options, self.group, self.layout, self.headGroups, self.includesBackward) =
            (shape, options, group, layout, headGroups, includesBackward)
        shardShape = try AttentionShape(
            batch: shape.batch, queryHeads: shape.queryHeads, keyValueHeads: shape.keyValueHeads,
            queryLength: 2 * schedule.chunkLength, headDim: shape.headDim, valueDim: shape.valueDim, dtype: shape.dtype)
        pairPlans = try Self.pairPlans(
            problem, schedule: schedule, group: group, headGroups: headGroups, includesBackward: includesBackward)
        // High priority: a transfer (and the copy that packs it) must not wait for the step's long kernels to drain.
        communication = try group.devices.map { try CUDAStream(device: $0, highPriority: true) }
    }

    /// The plans of every pair this process computes, made once: pairs of equal shape and mods share one.
    private static func pairPlans(
        _ problem: AttentionProblem, schedule: ContextParallelSchedule, group: ContextParallelGroup, headGroups: Int,
        includesBackward: Bool
    ) throws -> [[[[AttentionPlan]]]] {
        var made: [PairPlanKey: AttentionPlan] = [:]
        return try zip(group.ranks, group.devices).map { rank, device in
            try schedule.steps[rank].map { step in
                try step.pairs.map { pair in
                    try (0..<headGroups).map { headGroup in
                        let key = try pairPlanKey(
                            problem, schedule: schedule, rank: rank, step: step, pair: pair, headGroup: headGroup,
                            headGroups: headGroups, device: device.ordinal)
                        if let plan = made[key] { return plan }
                        let plan = try AttentionPlan(
                            AttentionProblem(shape: key.shape, options: key.options), device: device,
                            includesBackward: includesBackward, cache: AttentionPlan.processCache.get())
                        made[key] = plan
                        return plan
                    }
                }
            }
        }
    }

    /// What makes one pair's plan: equal keys share a plan.
    struct PairPlanKey: Hashable {
        var device: Int
        var shape: AttentionShape
        var options: AttentionOptions
        var text: String  // the mods as printed: AttentionOptions compares mods by structure, not by literal values

        func hash(into hasher: inout Hasher) { hasher.combine(device); hasher.combine(shape); hasher.combine(text) }
    }

    /// The problem of one pair for one group of heads: the pair's sizes, and the mods at its global offsets.
    static func pairPlanKey(
        _ problem: AttentionProblem, schedule: ContextParallelSchedule, rank: Int, step: ContextParallelSchedule.Step,
        pair: ContextParallelSchedule.Pair, headGroup: Int, headGroups: Int, device: Int
    ) throws -> PairPlanKey {
        let global = problem.shape
        let chunk = schedule.chunkLength
        let keyRows = step.keyRows[pair.keyChunk]
        let shape = try AttentionShape(
            batch: global.batch, queryHeads: global.queryHeads / headGroups,
            keyValueHeads: global.keyValueHeads / headGroups, queryLength: chunk, keyLength: keyRows.count,
            headDim: global.headDim, valueDim: global.valueDim, dtype: global.dtype)
        let positions = GlobalPositions(
            query: schedule.globalChunk(rank: rank, local: pair.queryChunk) * chunk,
            key: schedule.globalChunk(rank: step.source, local: pair.keyChunk) * chunk + keyRows.lowerBound,
            head: headGroup * shape.queryHeads, queryLength: global.queryLength, keyLength: global.keyLength)
        var options = AttentionOptions(scale: problem.scale)
        options.isCausal = pair.kind == .causal
        if pair.kind == .masked { options.mask = problem.mask?.atGlobalPositions(positions) }
        options.scoreMod = problem.scoreMod?.atGlobalPositions(positions)
        options.deterministicGradients = problem.options.deterministicGradients
        let text = [options.mask?.description ?? "", options.scoreMod?.description ?? ""].joined(separator: "\n")
        return PairPlanKey(device: device, shape: shape, options: options, text: text)
    }
}
