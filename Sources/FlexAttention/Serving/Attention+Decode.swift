extension Attention {
    /// Attends from `Sq` new queries per sequence to everything its KV cache holds: one decoding step (plain,
    /// speculative or a chunk of a prefill).
    ///
    /// The new tokens' keys and values must already be in the cache (``KVCache/append(keys:values:)``): query `i`
    /// of sequence `b` sits at position `L[b] − Sq + i`, where `L[b]` is the cache's length, and sees positions
    /// `0..<L[b]`. Masks and score mods see those absolute positions as `q` and `kv`, and `q_len = kv_len = L[b]`,
    /// so a sliding window, soft-capping, ALiBi or a document mask written for prefill works unchanged.
    /// `isCausal` is `q >= kv` on the absolute positions (both alignments agree when the queries are the last
    /// tokens); without it, each new query also sees the other new tokens. Sinks join every row's denominator.
    ///
    /// On a CUDA device each call uploads the cache, decodes and waits, a convenience for tests and tools; a server
    /// keeps a ``DeviceKVCache`` on the GPU and calls a ``DecodePlan`` on its own stream.
    ///
    /// The query heads that share a KV head are computed together, so each cached key and value is read once per
    /// KV head; long caches are split and the parts merged, with a split count that depends on the shapes only, so
    /// results are the same bits on every run. Slots past a sequence's length are never read: they may hold
    /// anything, NaN included. Within a sequence's length, a token holding NaN or ±∞ makes the outputs of its KV
    /// head's queries NaN, unless a mask removes it for all of them.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`, `Hq` a multiple of the cache's KV heads, `Sq ≤ L[b]` for every sequence.
    ///   - cache: the cache, contiguous or paged.
    ///   - options: scale, mask, score mod and sinks; a ``BlockMask`` cannot be given (its lengths are fixed).
    ///   - outputDType: the dtype of `O`; the query's when `nil`.
    /// - Returns: `O` `[B, Hq, Sq, Dv]` and the log-sum-exp, Float32 `[B, Hq, Sq]`, sinks included (−∞, with O = 0,
    ///   where a row keeps nothing and has no sink).
    /// - Throws: ``FlexAttentionError`` for a query that does not fit the cache or a sequence shorter than `Sq`;
    ///   ``ModError`` for a mod that reads a table outside its bounds anywhere in the cache's domain.
    public func decode(
        query: Tensor, cache: KVCache, options: AttentionOptions = .init(), outputDType: DType? = nil
    ) throws -> AttentionOutput {
        let problem = try DecodeProblem(
            query: query.shape, cache: cache.index, kvHeads: cache.kvHeads, headDim: cache.headDim,
            valueDim: cache.valueDim, options: options)
        switch device {
        case .cpu:
            return try CPUDecode(problem: problem, query: query, cache: cache, outputDType: outputDType ?? query.dtype)
                .run()
        case let .cuda(ordinal):
            let result = try CUDAHostDecode.decode(problem, query: query, cache: cache, ordinal: ordinal)
            guard let outputDType, outputDType != result.output.dtype else { return result }
            return AttentionOutput(output: try result.output.converted(to: outputDType), logSumExp: result.logSumExp)
        }
    }
}
