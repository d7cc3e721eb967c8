extension AttentionPlan {
    /// Queues `O = softmax(scale · Q Kᵀ [masked]) V` and its log-sum-exp on `stream`, into new tensors, and returns
    /// without waiting.
    ///
    /// With sinks, each row's sink joins its softmax denominator (`LSE′ = log(e^LSE + e^sink)`,
    /// `O′ = O · e^(LSE − LSE′)`; a row that keeps no key gets `LSE′ = sink` and `O′ = 0`), and `O′`, `LSE′` are
    /// what is returned and what the backward pass takes.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`, any strides (BHSD, BSHD or any other view).
    ///   - key: `[B, Hkv, Skv, D]`.
    ///   - value: `[B, Hkv, Skv, Dv]`.
    ///   - stream: where the work is queued, and the new tensors allocated and later freed (stream-ordered).
    /// - Returns: `O` (contiguous `[B, Hq, Sq, Dv]`, the inputs' dtype) and the log-sum-exp (Float32 `[B, Hq, Sq]`),
    ///   sinks included, valid once the queued work has run.
    /// - Throws: ``FlexAttentionError`` for tensors that do not match the plan, ``CUDAError`` for another device or
    ///   no memory; nothing is queued then.
    public func forward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionOutput {
        try checkInputs(query: query, key: key, value: value, stream: stream)
        let result = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: shape.dtype, shape: shape.outputShape, stream: stream),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: shape.logSumExpShape, stream: stream))
        try enqueueForward(query: query, key: key, value: value, into: result, on: stream)
        return result
    }

    /// Queues the forward pass on `stream` into caller-provided tensors, allocating nothing, so that it can be
    /// captured in a ``CUDAGraph``.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]`, any strides.
    ///   - key: `[B, Hkv, Skv, D]`.
    ///   - value: `[B, Hkv, Skv, Dv]`.
    ///   - output: `O`, `[B, Hq, Sq, Dv]` in the inputs' dtype, any strides; and its log-sum-exp, contiguous Float32
    ///     `[B, Hq, Sq]`.
    ///   - stream: where the work is queued.
    /// - Throws: as ``forward(query:key:value:on:)``; nothing is queued then.
    public func forward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, into output: DeviceAttentionOutput,
        on stream: CUDAStream
    ) throws {
        try checkInputs(query: query, key: key, value: value, stream: stream)
        try check(forward: output)
        try enqueueForward(query: query, key: key, value: value, into: output, on: stream)
    }

    private func enqueueForward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, into output: DeviceAttentionOutput,
        on stream: CUDAStream
    ) throws {
        CUDAGraph.retainIfCapturing([self, query.buffer, key.buffer, value.buffer, output.output.buffer,
                                     output.logSumExp.buffer])
        try programs(for: [query, key, value]).forward.enqueue(
            query: query, key: key, value: value, output: output.output, logSumExp: output.logSumExp, sizes: sizes,
            mods: mods, tensorMaps: tensorMaps, on: stream)
        try sinks?.enqueueForward(into: output, on: stream)
    }
}
