extension KVCache {
    /// One decoding step on the CPU that first appends the step's new tokens: ``append(keys:values:)`` then
    /// ``Attention/decode(query:cache:options:outputDType:)``, with the step checked against the grown cache before
    /// anything is written, so that a step refused for its query, options or mods leaves the cache as it was. What the
    /// C interface's `fa_decode` runs over caller memory.
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`; O has its dtype.
    ///   - newKeys: `[B, Hkv, n, D]`, or nil with `newValues` nil to append nothing.
    ///   - newValues: `[B, Hkv, n, Dv]`.
    ///   - options: as for decode.
    /// - Throws: as ``append(keys:values:)`` and decode; only an allocation failing after the append leaves it done.
    package mutating func decodeStep(
        query: Tensor, appendingKeys newKeys: Tensor?, values newValues: Tensor?, options: AttentionOptions
    ) throws -> AttentionOutput {
        guard (newKeys == nil) == (newValues == nil) else {
            throw FlexAttentionError.invalidArgument("new keys and new values must be given together")
        }
        let count = newKeys.map { $0.shape.count == 4 ? $0.shape[2] : 0 } ?? 0
        let problem = try DecodeProblem(
            query: query.shape, cache: index.appending(count), kvHeads: kvHeads, headDim: headDim, valueDim: valueDim,
            options: options)
        if let newKeys, let newValues { try append(keys: newKeys, values: newValues) }
        return try CPUDecode(problem: problem, query: query, cache: self, outputDType: query.dtype).run()
    }
}
