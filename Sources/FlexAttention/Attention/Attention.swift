/// Exact scaled-dot-product attention, computed the FlashAttention way: tiled, with an online softmax, never
/// holding the `Sq × Skv` score matrix.
///
/// ```swift
/// let attention = Attention(device: .cpu)
/// let q = try Tensor(queryValues, shape: [1, 8, 1024, 64])
/// let k = try Tensor(keyValues, shape: [1, 2, 1024, 64])     // GQA: 4 query heads per key/value head
/// let v = try Tensor(valueValues, shape: [1, 2, 1024, 64])
/// let result = try attention.forward(query: q, key: k, value: v, options: .init(isCausal: true))
/// let grads = try attention.backward(
///     query: q, key: k, value: v, forward: result, outputGradient: dO, options: .init(isCausal: true))
/// ```
public struct Attention: Sendable {
    /// Where the work runs.
    public let device: Device

    /// Attention on `device`; ``Device/cpu`` needs no setup.
    /// - Parameter device: where the work runs; the CPU by default.
    public init(device: Device = .cpu) {
        self.device = device
    }

    /// Computes `O = softmax(scale · Q Kᵀ [masked]) V` and the natural-log log-sum-exp of each row.
    ///
    /// The tensors live in host memory: on a CUDA device each call copies them to the device, runs, waits and
    /// copies the results back, a convenience whose copies can take longer than the attention itself. Programs that
    /// keep their tensors on the device use an ``AttentionPlan``.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`.
    ///   - key: `[B, Hkv, Skv, D]`, with `Hq` a multiple of `Hkv`.
    ///   - value: `[B, Hkv, Skv, Dv]`.
    ///   - options: scale and masking.
    ///   - outputDType: the dtype of `O`; the inputs' dtype when `nil`.
    /// - Returns: `O` as a new contiguous `[B, Hq, Sq, Dv]` tensor and the log-sum-exp as Float32 `[B, Hq, Sq]`
    ///   (−∞ where a row keeps nothing, whose output row is 0; NaN where a row is poisoned, see below).
    /// - Throws: ``FlexAttentionError`` for malformed inputs, before anything is computed.
    ///
    /// ## NaN and infinity
    ///
    /// A score the mask removes never affects any output, whatever its query, key and value rows hold (a KV-cache
    /// slot past a sequence's length may hold garbage). A row that keeps at least one key is *poisoned* when its
    /// query row, or the key or value row of a key it keeps, holds NaN or ±∞: its output row and its log-sum-exp
    /// are NaN. Every other row is computed as if those rows were absent. A row that keeps nothing gives O = 0 and
    /// LSE = −∞ whatever its inputs. The same holds on every device; when all inputs are finite it costs one scan of
    /// them.
    ///
    /// Finite inputs are supported when every kept score, in the base-2 units the kernels use
    /// (`scale · q·k · log2 e`), is finite in Float32: with the default scale and elements of magnitude at most
    /// `M`, `1.45 · √D · M² < 3.4e38`, so M up to about 5e18 for D = 64 and 3e18 for D = 512; any Float16 input is
    /// in range. Beyond it, a row whose own kept scores overflow may come out NaN or ±∞; other rows are unaffected.
    public func forward(
        query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions = .init(), outputDType: DType? = nil
    ) throws -> AttentionOutput {
        let problem = try AttentionProblem(
            shape: AttentionShape(query: query, key: key, value: value), options: options)
        let result = try forwardWithoutSinks(problem, query: query, key: key, value: value, outputDType: outputDType)
        guard let sinks = options.sinks else { return result }
        return try AttentionSinks.forward(result, sinks: sinks, options: options)
    }

    /// `problem`'s forward pass on this device, sinks left out (the callers join them): also each packed sequence's.
    func forwardWithoutSinks(
        _ problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, outputDType: DType?
    ) throws -> AttentionOutput {
        if problem.shape.isEmpty {
            return try EmptyAttention.forward(problem, outputDType: outputDType ?? problem.shape.dtype)
        }
        let result = try NonFiniteInputs.forward(problem: problem, query: query, key: key, value: value) { query, key, value in
            switch device {
            case .cpu:
                return try CPUForward(
                    shape: problem.shape, scale: problem.scale, mods: try CPUMods(problem, includesGradients: false),
                    query: query, key: key, value: value, outputDType: outputDType ?? problem.shape.dtype
                ).run()
            case let .cuda(ordinal):
                let result = try CUDAHostAttention(device: CUDADevice.open(ordinal), cache: AttentionPlan.processCache.get())
                    .forward(problem, query: query, key: key, value: value)
                guard let outputDType, outputDType != result.output.dtype else { return result }
                return AttentionOutput(
                    output: try result.output.converted(to: outputDType),
                    logSumExp: result.logSumExp)
            }
        }
        return AttentionOutput(output: result.output, logSumExp: result.logSumExp, options: problem.options)
    }

    /// Gradients of a scalar loss with respect to Q, K and V, given `dO = ∂loss/∂O`.
    ///
    /// Recomputes the probabilities from the saved log-sum-exp (FlashAttention's backward). Deterministic: the
    /// same inputs give the same bits on every run and with any number of threads (on a Hopper GPU above D = 128,
    /// unless ``AttentionOptions/deterministicGradients`` is false).
    ///
    /// - Parameters:
    ///   - query: the query given to ``forward(query:key:value:options:outputDType:)``.
    ///   - key: the key given to it.
    ///   - value: the value given to it.
    ///   - forward: what it returned.
    ///   - outputGradient: `dO`, `[B, Hq, Sq, Dv]`, any dtype.
    ///   - options: the options of the forward call; when `nil`, those `forward` carries (``AttentionOutput/options``),
    ///     or the defaults for an output made without them. Options that differ from those `forward` carries are
    ///     an error: gradients of another function than the one computed would be silently wrong.
    ///   - gradientDType: the dtype of the gradients; the inputs' dtype when `nil`.
    /// - Returns: `dQ`, `dK`, `dV` as new contiguous tensors with the shapes of Q, K and V.
    ///
    /// ## NaN and infinity
    ///
    /// A row is *poisoned* when its saved LSE is not −∞ (it keeps something) and its Q, dO or O row holds NaN or
    /// ±∞, its LSE is NaN or +∞, or it keeps a key whose K or V row holds NaN or ±∞. dQ is NaN on poisoned rows;
    /// dK and dV are NaN on the keys some poisoned row keeps (over the query heads that share the key's head);
    /// every Float table's gradient is NaN when any row is poisoned. Everything else is computed as if the
    /// non-finite rows were absent: a score the mask removes never affects any gradient, and a key that no row
    /// keeps gets zero gradients whatever it holds. Backward's supported range adds to forward's that `dO · v` and
    /// every gradient be finite in Float32; for `dO` of order 1, elements of magnitude up to 1e15 qualify for head
    /// dims up to 512 and sequences up to a million.
    public func backward(
        query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput, outputGradient: Tensor,
        options: AttentionOptions? = nil, gradientDType: DType? = nil
    ) throws -> AttentionGradients {
        let options = try forward.backwardOptions(options)
        let shape = try AttentionShape(query: query, key: key, value: value)
        try AttentionShape.require(forward.output, named: "output", shape: shape.outputShape)
        try AttentionShape.require(outputGradient, named: "output gradient", shape: shape.outputShape)
        try AttentionShape.require(forward.logSumExp, named: "log-sum-exp", shape: shape.logSumExpShape)
        let problem = try AttentionProblem(shape: shape, options: options)
        var gradients = try backwardWithoutSinks(
            problem, query: query, key: key, value: value, forward: forward, outputGradient: outputGradient,
            gradientDType: gradientDType)
        if let sinks = options.sinks {
            gradients.sinkGradient = try AttentionSinks.gradient(
                forward: forward, outputGradient: outputGradient, sinks: sinks)
        }
        return gradients
    }

    /// `problem`'s backward pass on this device from a sink-adjusted `forward`: also each packed sequence's.
    func backwardWithoutSinks(
        _ problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput,
        outputGradient: Tensor, gradientDType: DType?
    ) throws -> AttentionGradients {
        let shape = problem.shape
        if shape.isEmpty { return try EmptyAttention.backward(problem, gradientDType: gradientDType ?? shape.dtype) }
        return try NonFiniteInputs.backward(
            problem: problem, query: query, key: key, value: value, forward: forward, outputGradient: outputGradient
        ) { query, key, value, forward, outputGradient in
            switch device {
            case .cpu:
                return try CPUBackward(
                    shape: shape, scale: problem.scale, mods: try CPUMods(problem, includesGradients: true),
                    query: query, key: key, value: value, output: forward.output, logSumExp: forward.logSumExp,
                    outputGradient: outputGradient, gradientDType: gradientDType ?? shape.dtype
                ).run()
            case let .cuda(ordinal):
                let result = try CUDAHostAttention(device: CUDADevice.open(ordinal), cache: AttentionPlan.processCache.get())
                    .backward(problem, query: query, key: key, value: value, forward: forward, outputGradient: outputGradient)
                guard let gradientDType, gradientDType != shape.dtype else { return result }
                return AttentionGradients(
                    query: try result.query.converted(to: gradientDType), key: try result.key.converted(to: gradientDType),
                    value: try result.value.converted(to: gradientDType), tableGradients: result.tableGradients)
            }
        }
    }
}

/// What a forward pass returns.
public struct AttentionOutput: Sendable {
    /// `O`, `[B, Hq, Sq, Dv]`.
    public let output: Tensor
    /// Natural-log log-sum-exp of each row's kept scores, Float32 `[B, Hq, Sq]`; −∞ for rows that keep nothing,
    /// NaN for rows poisoned by a non-finite input.
    public let logSumExp: Tensor
    /// The options the forward pass ran with, which backward uses and checks; nil for an output paired by hand
    /// without them.
    public let options: AttentionOptions?

    /// Pairs an output with its log-sum-exp (for example, ones saved from an earlier forward pass) and, when known,
    /// the options that made them.
    public init(output: Tensor, logSumExp: Tensor, options: AttentionOptions? = nil) {
        self.output = output
        self.logSumExp = logSumExp
        self.options = options
    }
}

extension AttentionOutput {
    /// The options a backward pass from this output uses: `given`, which must equal those it carries, or those it
    /// carries, or the defaults.
    func backwardOptions(_ given: AttentionOptions?) throws -> AttentionOptions {
        if let given, let options, given != options {
            throw FlexAttentionError.invalidArgument(
                "backward's options differ from the forward pass's; pass the same options, or none to use the forward's")
        }
        return given ?? options ?? AttentionOptions()
    }
}

/// What a backward pass returns.
public struct AttentionGradients: Sendable {
    /// `∂loss/∂Q`, shape of Q.
    public let query: Tensor
    /// `∂loss/∂K`, shape of K (summed over the query heads that share each key head).
    public let key: Tensor
    /// `∂loss/∂V`, shape of V (summed likewise).
    public let value: Tensor
    /// `∂loss/∂table` for every Float table the score mod reads, by table name, Float32 with the table's shape.
    public let tableGradients: [String: Tensor]
    /// `∂loss/∂sink` for the options' attention sinks, Float32 `[Hq]`; nil without sinks.
    public internal(set) var sinkGradient: Tensor? = nil

    /// `∂loss/∂table` for a table the score mod reads (by the table itself rather than its name); nil for a table
    /// it does not read.
    public subscript(table table: FloatTable) -> Tensor? {
        tableGradients[table.table.name].flatMap { $0.shape == table.table.shape ? $0 : nil }
    }
}
