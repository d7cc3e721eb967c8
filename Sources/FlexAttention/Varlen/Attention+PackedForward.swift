extension Attention {
    /// Attention over packed sequences of different lengths in one call (FlashAttention's varlen API), without a
    /// dense document mask: sequence `b` is rows ``PackedSequences/queryRange(_:)`` of `query` attending to rows
    /// ``PackedSequences/keyRange(_:)`` of `key` and `value` only.
    ///
    /// ```swift
    /// // Two prompts of 300 and 1024 tokens, packed.
    /// let sequences = try PackedSequences(queryOffsets: [0, 300, 1324], keyOffsets: [0, 300, 1324])
    /// let q = try Tensor.random(shape: [1324, 8, 64], seed: 1)     // [totalQ, Hq, D]
    /// let k = try Tensor.random(shape: [1324, 2, 64], seed: 2)     // [totalK, Hkv, D]
    /// let v = try Tensor.random(shape: [1324, 2, 64], seed: 3)
    /// let result = try Attention().forward(
    ///     query: q, key: k, value: v, sequences: sequences, options: .init(isCausal: true))
    /// ```
    ///
    /// Mask and score mods see `b` as the sequence's index, `h` as the query head, `q` and `kv` as positions within
    /// the sequence (from 0) and `q_len`, `kv_len` as the sequence's own counts. ``AttentionOptions/isCausal``
    /// applies per sequence, aligned by ``AttentionOptions/causalAlignment`` with the sequence's lengths. A sequence
    /// without queries computes nothing; one with queries but no keys gives O = 0 and LSE = −∞ on its rows, as
    /// dense attention does for an empty cache. Sinks join every row's denominator as in dense attention. NaN and
    /// ±∞ in the inputs reach exactly the outputs of their own sequence that use them, by the rules of
    /// ``forward(query:key:value:options:outputDType:)``.
    ///
    /// Each sequence runs through the dense machinery of the device on views of its rows, one after another; on a
    /// CUDA device the packed tensors are copied once and every sequence is queued on one stream
    /// (``PackedAttentionPlan``).
    ///
    /// - Parameters:
    ///   - query: `[totalQ, Hq, D]`, any strides; `totalQ` is the last query offset.
    ///   - key: `[totalK, Hkv, D]`, any strides, with `Hq` a multiple of `Hkv`; `totalK` is the last key offset.
    ///   - value: `[totalK, Hkv, Dv]`, any strides.
    ///   - sequences: where each sequence's rows are.
    ///   - options: scale, causality, mask, score mod and sinks; a ``AttentionOptions/blockMask`` cannot describe
    ///     packed sequences and is refused.
    ///   - outputDType: the dtype of `O`; the inputs' dtype when `nil`.
    /// - Returns: `O` as a new contiguous `[totalQ, Hq, Dv]` tensor and the log-sum-exp as Float32 `[Hq, totalQ]`
    ///   (FlashAttention's varlen layout), with the options, for
    ///   ``backward(query:key:value:sequences:forward:outputGradient:options:gradientDType:)``.
    /// - Throws: ``FlexAttentionError`` for malformed inputs (ranks, sizes, dtypes, row counts that are not the last
    ///   offsets, a block mask, bad sinks or scale), ``ModError`` for a mod that leaves some sequence's domain; all
    ///   before anything is computed.
    public func forward(
        query: Tensor, key: Tensor, value: Tensor, sequences: PackedSequences, options: AttentionOptions = .init(),
        outputDType: DType? = nil
    ) throws -> AttentionOutput {
        let packed = try PackedProblem(query: query, key: key, value: value, sequences: sequences, options: options)
        let dtype = outputDType ?? packed.whole.dtype
        var output: Tensor
        var logSumExp: Tensor
        if case let .cuda(ordinal) = device, !packed.runs.isEmpty, try PackedInputs.areFinite([query, key, value]) {
            (output, logSumExp) = try CUDAHostAttention(device: CUDADevice.open(ordinal), cache: AttentionPlan.processCache.get())
                .forward(packed, query: query, key: key, value: value)
            if output.dtype != dtype { output = try output.converted(to: dtype) }
        } else {
            output = try Tensor(zeros: packed.outputShape, dtype: dtype)
            logSumExp = try Tensor(
                [Float](repeating: -.infinity, count: packed.logSumExpShape.reduce(1, *)), shape: packed.logSumExpShape)
            try forwardEachSequence(packed, query: query, key: key, value: value, into: output, logSumExp: logSumExp)
        }
        if let sinks = options.sinks {
            logSumExp = try PackedSinks.forward(output: output, logSumExp: logSumExp, sinks: sinks)
        }
        return AttentionOutput(output: output, logSumExp: logSumExp, options: options)
    }
}

/// Whether packed inputs can take the CUDA path that runs every sequence on one stream, which, like
/// ``AttentionPlan``, expects finite inputs.
enum PackedInputs {
    /// Whether every row of these packed `[total, H, D]` tensors is finite.
    static func areFinite(_ tensors: [Tensor]) throws -> Bool {
        try tensors.allSatisfy { RowFlags(nonFiniteRowsOf: try $0.packedRows(0..<$0.shape[0])).isEmpty }
    }

    /// Whether a packed log-sum-exp `[Hq, totalQ]` holds no NaN or +∞.
    static func isValid(logSumExp: Tensor) throws -> Bool {
        try RowFlags(invalidLogSumExp: logSumExp.packedColumns(0..<logSumExp.shape[1])).isEmpty
    }
}
