/// Attention over packed sequences of different lengths on device-resident tensors (FlashAttention's varlen API),
/// prepared once and called many times, like ``AttentionPlan``.
///
/// Sequence `b` is rows ``PackedSequences/queryRange(_:)`` of the packed queries attending to rows
/// ``PackedSequences/keyRange(_:)`` of the packed keys and values; mods see `b` as the sequence index and `q`,
/// `kv`, `q_len`, `kv_len` within the sequence (see
/// ``Attention/forward(query:key:value:sequences:options:outputDType:)``, whose results this matches).
///
/// ```swift
/// let sequences = try PackedSequences(queryOffsets: [0, 300, 1324], keyOffsets: [0, 300, 1324])
/// let plan = try PackedAttentionPlan(
///     sequences: sequences, queryHeads: 16, keyValueHeads: 4, headDim: 128, dtype: .bfloat16,
///     options: AttentionOptions(isCausal: true), device: gpu)
/// let result = try plan.forward(query: q, key: k, value: v, on: stream)   // q [1324, 16, 128]; queued
/// let grads = try plan.backward(query: q, key: k, value: v, forward: result, outputGradient: dO, on: stream)
/// ```
///
/// Each sequence runs as an ``AttentionPlan`` of batch 1 on views of the packed tensors, all queued on the call's
/// stream without waiting: one plan per distinct pair of lengths, or one per sequence when a mod reads `b`. The log-
/// sum-exp and the gradients pass through a scratch buffer per call and are rearranged into the packed layouts with
/// row copies on the stream. Inputs are expected to be finite, as for ``AttentionPlan``. Errors are typed and
/// raised before anything is queued. Attention sinks are not taken yet (``Attention`` applies them on the host).
public final class PackedAttentionPlan: Sendable {
    /// The device every tensor and stream of a call must be on.
    public let device: CUDADevice
    /// Where each sequence's rows are.
    public let sequences: PackedSequences
    /// Scale, causality, mask and score mod, as the plan was made.
    public let options: AttentionOptions
    /// Whether the plan was made with its backward kernels.
    public let includesBackward: Bool

    let packed: PackedProblem
    /// The sequences that have queries and keys, each with the plan that runs it.
    let runs: [PlannedSequence]

    struct PlannedSequence: Sendable {
        let sequence: PackedProblem.Sequence
        let plan: AttentionPlan
    }

    /// Prepares attention over `sequences` with these sizes and `options` on `device`.
    /// - Parameters:
    ///   - sequences: the packed sequences' offsets; the totals are the tensors' row counts.
    ///   - queryHeads: `Hq`, a multiple of `keyValueHeads`.
    ///   - keyValueHeads: `Hkv`.
    ///   - headDim: `D`, of queries and keys.
    ///   - valueDim: `Dv`; `headDim` when `nil`.
    ///   - dtype: the element type of every input.
    ///   - options: scale, causality (per sequence), mask and score mod; no block mask and no sinks.
    ///   - device: the GPU the kernels are compiled for and run on.
    ///   - includesBackward: whether to prepare the backward kernels too.
    /// - Throws: ``FlexAttentionError`` for sizes or options that do not fit (as
    ///   ``Attention/forward(query:key:value:sequences:options:outputDType:)`` would throw them), for sinks, and
    ///   when the sequences hold no query or no key row at all; ``ModError`` for a mod that leaves a sequence's domain;
    ///   ``CUDAError`` when compilation or the device fails.
    public convenience init(
        sequences: PackedSequences, queryHeads: Int, keyValueHeads: Int, headDim: Int, valueDim: Int? = nil,
        dtype: DType, options: AttentionOptions = .init(), device: CUDADevice, includesBackward: Bool = true
    ) throws {
        guard options.sinks == nil else {
            throw FlexAttentionError.invalidArgument("PackedAttentionPlan does not take attention sinks yet; use Attention")
        }
        let (queries, keys) = (sequences.totalQueries, sequences.totalKeys)
        let packed = try PackedProblem(
            shapes: [[queries, queryHeads, headDim], [keys, keyValueHeads, headDim],
                     [keys, keyValueHeads, valueDim ?? headDim]],
            dtypes: [dtype, dtype, dtype], sequences: sequences, options: options)
        try self.init(packed, device: device, includesBackward: includesBackward, cache: AttentionPlan.processCache.get())
    }

    /// A plan for `packed`, whose sinks (if any) its caller joins on the host.
    init(_ packed: PackedProblem, device: CUDADevice, includesBackward: Bool, cache: KernelCache) throws {
        guard packed.whole.queryLength > 0, packed.whole.keyLength > 0 else {
            throw FlexAttentionError.invalidArgument(
                "a PackedAttentionPlan needs query and key rows, not \(packed.whole.queryLength) queries and"
                    + " \(packed.whole.keyLength) keys")
        }
        let readsBatch = [packed.options.mask?.expression, packed.options.scoreMod?.expression]
            .contains { $0?.reads(.b) == true }
        var plans: [PlanKey: AttentionPlan] = [:]
        var runs: [PlannedSequence] = []
        for sequence in packed.runs {
            let key = PlanKey(
                queries: sequence.queries.count, keys: sequence.keys.count, sequence: readsBatch ? sequence.index : nil)
            let plan = try plans[key]
                ?? AttentionPlan(sequence.problem, device: device, includesBackward: includesBackward, cache: cache)
            plans[key] = plan
            runs.append(PlannedSequence(sequence: sequence, plan: plan))
        }
        (self.device, sequences, options, self.includesBackward) =
            (device, packed.sequences, packed.options, includesBackward)
        (self.packed, self.runs) = (packed, runs)
    }

    /// What one ``AttentionPlan`` serves: sequences of these lengths, or one sequence when its mods read `b`.
    private struct PlanKey: Hashable {
        let queries: Int
        let keys: Int
        let sequence: Int?
    }

    /// The most query rows and key rows of one sequence, which the scratch buffers hold.
    var longestSequence: (queries: Int, keys: Int) {
        runs.reduce((0, 0)) { (max($0.0, $1.sequence.queries.count), max($0.1, $1.sequence.keys.count)) }
    }
}
