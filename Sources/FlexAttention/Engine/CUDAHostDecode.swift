/// The host-tensor convenience behind decoding on `.cuda(n)`: copies the query and the cache to the device, runs a
/// ``DecodePlan`` made for the call on a stream of its own, waits, and copies the results back.
enum CUDAHostDecode {
    /// - Parameters:
    ///   - problem: the checked problem (``DecodeProblem``) of `query` against `cache`.
    ///   - query: `[B, Hq, Sq, D]`, any dtype and strides; computed in the cache's dtype.
    ///   - cache: contiguous or paged, any dtype.
    ///   - ordinal: the CUDA device.
    /// - Returns: O in the query's dtype and the Float32 log-sum-exp, sinks included.
    /// - Throws: ``FlexAttentionError`` for a head dim no kernel fits; ``CUDAError`` when the device fails.
    static func decode(_ problem: DecodeProblem, query: Tensor, cache: KVCache, ordinal: Int) throws -> AttentionOutput {
        let device = try CUDADevice.open(ordinal)
        let deviceCache = try DeviceKVCache(copying: cache, to: device)
        let options = AttentionOptions(scale: problem.scale, mask: problem.mask, scoreMod: problem.scoreMod,
                                       sinks: problem.sinks)
        let plan = try DecodePlan(
            problem, options: options, layout: deviceCache.layout, device: device, cache: AttentionPlan.processCache.get())
        let stream = try CUDAStream(device: device)
        let dtype = cache.keys.dtype
        let result = try plan.decode(
            query: DeviceTensor(copying: query.dtype == dtype ? query : query.converted(to: dtype), to: device),
            cache: deviceCache, on: stream)
        try stream.synchronize()
        let output = try result.output.copyToHost()
        return AttentionOutput(
            output: output.dtype == query.dtype ? output : try output.converted(to: query.dtype),
            logSumExp: try result.logSumExp.copyToHost())
    }
}
