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

    /// - Parameter device: where the work runs; the CPU by default.
    public init(device: Device = .cpu) {
        self.device = device
    }

    /// Computes `O = softmax(scale · Q Kᵀ [masked]) V` and the natural-log log-sum-exp of each row.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`.
    ///   - key: `[B, Hkv, Skv, D]`, with `Hq` a multiple of `Hkv`.
    ///   - value: `[B, Hkv, Skv, Dv]`.
    ///   - options: scale and masking.
    ///   - outputDType: the dtype of `O`; the inputs' dtype when `nil`.
    /// - Returns: `O` as a new contiguous `[B, Hq, Sq, Dv]` tensor and the log-sum-exp as Float32 `[B, Hq, Sq]`
    ///   (−∞ where a row keeps nothing, whose output row is 0).
    /// - Throws: ``FlexAttentionError`` for malformed inputs, before anything is computed.
    public func forward(
        query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions = .init(), outputDType: DType? = nil
    ) throws -> AttentionOutput {
        let shape = try AttentionShape(query: query, key: key, value: value)
        let scale = try shape.resolvedScale(options.scale)
        switch device {
        case .cpu:
            return try CPUForward(
                shape: shape, scale: scale, mods: try CPUMods(options, shape: shape, includesGradients: false), query: query, key: key,
                value: value, outputDType: outputDType ?? shape.dtype
            ).run()
        case let .cuda(ordinal):
            let result = try CUDAForward(device: CUDADevice.open(ordinal), cache: Self.kernelCache.get())
                .run(query: query, key: key, value: value, options: options)
            guard let outputDType, outputDType != result.output.dtype else { return result }
            return AttentionOutput(
                output: try Tensor(result.output.floats(), shape: result.output.shape, dtype: outputDType),
                logSumExp: result.logSumExp)
        }
    }

    /// One kernel cache per process, so a kernel compiled by one call serves the next.
    private static let kernelCache = Result { try KernelCache(compiler: NVRTC()) }

    /// Gradients of a scalar loss with respect to Q, K and V, given `dO = ∂loss/∂O`.
    ///
    /// Recomputes the probabilities from the saved log-sum-exp (FlashAttention's backward). Deterministic: the
    /// same inputs give the same bits on every run and with any number of threads.
    ///
    /// - Parameters:
    ///   - query: the query given to ``forward(query:key:value:options:outputDType:)``.
    ///   - key: the key given to it.
    ///   - value: the value given to it.
    ///   - forward: what it returned.
    ///   - outputGradient: `dO`, `[B, Hq, Sq, Dv]`, any dtype.
    ///   - options: the options given to the forward call.
    ///   - gradientDType: the dtype of the gradients; the inputs' dtype when `nil`.
    /// - Returns: `dQ`, `dK`, `dV` as new contiguous tensors with the shapes of Q, K and V.
    public func backward(
        query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput, outputGradient: Tensor,
        options: AttentionOptions = .init(), gradientDType: DType? = nil
    ) throws -> AttentionGradients {
        let shape = try AttentionShape(query: query, key: key, value: value)
        let scale = try shape.resolvedScale(options.scale)
        let outputShape = [shape.batch, shape.queryHeads, shape.queryLength, shape.valueDim]
        try AttentionShape.require(forward.output, named: "output", shape: outputShape)
        try AttentionShape.require(outputGradient, named: "output gradient", shape: outputShape)
        try AttentionShape.require(
            forward.logSumExp, named: "log-sum-exp", shape: [shape.batch, shape.queryHeads, shape.queryLength])
        switch device {
        case .cpu:
            return try CPUBackward(
                shape: shape, scale: scale, mods: try CPUMods(options, shape: shape, includesGradients: true), query: query, key: key,
                value: value, output: forward.output, logSumExp: forward.logSumExp, outputGradient: outputGradient,
                gradientDType: gradientDType ?? shape.dtype
            ).run()
        case let .cuda(ordinal):
            let result = try CUDABackward(device: CUDADevice.open(ordinal), cache: Self.kernelCache.get()).run(
                query: query, key: key, value: value, forward: forward, outputGradient: outputGradient, options: options)
            guard let gradientDType, gradientDType != shape.dtype else { return result }
            func converted(_ tensor: Tensor) throws -> Tensor {
                try Tensor(tensor.floats(), shape: tensor.shape, dtype: gradientDType)
            }
            return AttentionGradients(
                query: try converted(result.query), key: try converted(result.key), value: try converted(result.value),
                tableGradients: result.tableGradients)
        }
    }
}

/// What a forward pass returns.
public struct AttentionOutput: Sendable {
    /// `O`, `[B, Hq, Sq, Dv]`.
    public let output: Tensor
    /// Natural-log log-sum-exp of each row's kept scores, Float32 `[B, Hq, Sq]`; −∞ for rows that keep nothing.
    public let logSumExp: Tensor

    /// Pairs an output with its log-sum-exp (for example, ones saved from an earlier forward pass).
    public init(output: Tensor, logSumExp: Tensor) {
        self.output = output
        self.logSumExp = logSumExp
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
}
