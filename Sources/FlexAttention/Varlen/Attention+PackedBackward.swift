extension Attention {
    /// Gradients of a scalar loss with respect to packed Q, K and V, given `dO = ∂loss/∂O`, for
    /// ``forward(query:key:value:sequences:options:outputDType:)``.
    ///
    /// Each sequence's gradients are those of dense attention on its rows (see
    /// ``backward(query:key:value:forward:outputGradient:options:gradientDType:)``, whose NaN rules apply per
    /// sequence); rows of a sequence without keys, or without queries, get zero gradients. The gradients of Float
    /// tables a score mod reads, and of sinks, are summed over every sequence (in sequence order on the CPU: the
    /// same bits on every run).
    ///
    /// - Parameters:
    ///   - query: the query given to the forward pass, `[totalQ, Hq, D]`.
    ///   - key: the key given to it, `[totalK, Hkv, D]`.
    ///   - value: the value given to it, `[totalK, Hkv, Dv]`.
    ///   - sequences: the sequences given to it.
    ///   - forward: what it returned: `O` `[totalQ, Hq, Dv]` and the Float32 log-sum-exp `[Hq, totalQ]`.
    ///   - outputGradient: `dO`, `[totalQ, Hq, Dv]`, any dtype and strides.
    ///   - options: the options of the forward call; when `nil`, those `forward` carries. Options that differ from
    ///     those `forward` carries are an error.
    ///   - gradientDType: the dtype of dQ, dK and dV; the inputs' dtype when `nil`.
    /// - Returns: dQ, dK and dV as new contiguous tensors with the shapes of Q, K and V; the Float tables' gradients
    ///   and, with sinks, the sink gradient (Float32 `[Hq]`).
    /// - Throws: ``FlexAttentionError`` for malformed inputs or options that differ from the forward pass's,
    ///   ``ModError`` for a mod that leaves some sequence's domain; all before anything is computed.
    public func backward(
        query: Tensor, key: Tensor, value: Tensor, sequences: PackedSequences, forward: AttentionOutput,
        outputGradient: Tensor, options: AttentionOptions? = nil, gradientDType: DType? = nil
    ) throws -> AttentionGradients {
        let options = try forward.backwardOptions(options)
        let packed = try PackedProblem(query: query, key: key, value: value, sequences: sequences, options: options)
        try AttentionShape.require(forward.output, named: "output", shape: packed.outputShape)
        try AttentionShape.require(outputGradient, named: "output gradient", shape: packed.outputShape)
        try AttentionShape.require(forward.logSumExp, named: "log-sum-exp", shape: packed.logSumExpShape)
        guard forward.logSumExp.dtype == .float32 else {
            throw FlexAttentionError.mixedDTypes(expected: .float32, actual: forward.logSumExp.dtype, tensor: "log-sum-exp")
        }
        let dtype = gradientDType ?? packed.whole.dtype
        var gradients: AttentionGradients
        if case let .cuda(ordinal) = device, !packed.runs.isEmpty,
           try PackedInputs.areFinite([query, key, value, forward.output, outputGradient]),
           try PackedInputs.isValid(logSumExp: forward.logSumExp) {
            gradients = try CUDAHostAttention(device: CUDADevice.open(ordinal), cache: AttentionPlan.processCache.get())
                .backward(
                    packed, query: query, key: key, value: value, forward: forward, outputGradient: outputGradient)
            if dtype != packed.whole.dtype {
                gradients = AttentionGradients(
                    query: try gradients.query.converted(to: dtype), key: try gradients.key.converted(to: dtype),
                    value: try gradients.value.converted(to: dtype), tableGradients: gradients.tableGradients)
            }
        } else {
            let (dq, dk, dv) = try (Tensor(zeros: packed.queryShape, dtype: dtype),
                                    Tensor(zeros: packed.keyShape, dtype: dtype),
                                    Tensor(zeros: packed.valueShape, dtype: dtype))
            let tables = try backwardEachSequence(
                packed, query: query, key: key, value: value, forward: forward, outputGradient: outputGradient,
                into: (dq, dk, dv))
            gradients = AttentionGradients(query: dq, key: dk, value: dv, tableGradients: tables)
        }
        if let sinks = options.sinks {
            gradients.sinkGradient = try PackedSinks.gradient(
                forward: forward, outputGradient: outputGradient, sinks: sinks)
        }
        return gradients
    }
}
