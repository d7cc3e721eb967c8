extension DecodePlan {
    /// Queues one decoding step on `stream`, into new tensors, and returns without waiting.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]` in the cache's dtype, any strides: the queries of the last `Sq` tokens of each
    ///     sequence, whose keys and values the cache already holds.
    ///   - cache: a cache of the plan's layout; its lengths are read on the device, in stream order.
    ///   - stream: where the work is queued, and the new tensors (and the split partials) allocated and later freed.
    /// - Returns: O (contiguous `[B, Hq, Sq, Dv]`, the cache's dtype) and the natural-log log-sum-exp (Float32
    ///   `[B, Hq, Sq]`, the sinks included; −∞ with O = 0 for a row that keeps nothing and has no sink), valid once
    ///   the queued work has run.
    /// - Throws: ``FlexAttentionError`` for a query or cache that does not match the plan, or a sequence holding
    ///   fewer than `Sq` tokens; ``CUDAError`` for another device or no memory. Nothing is queued then.
    public func decode(query: DeviceTensor, cache: DeviceKVCache, on stream: CUDAStream) throws -> DeviceAttentionOutput {
        try check(query: query, cache: cache, stream: stream)
        let result = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: layout.dtype, shape: outputShape, stream: stream),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: logSumExpShape, stream: stream))
        try enqueue(query: query, cache: cache, into: result, on: stream)
        return result
    }

    /// Queues one decoding step on `stream` into caller tensors, allocating nothing but the split partials
    /// (stream-ordered), so that it can be captured in a ``CUDAGraph``.
    ///
    /// - Parameters:
    ///   - query: `[B, Hq, Sq, D]` in the cache's dtype, any strides.
    ///   - cache: a cache of the plan's layout.
    ///   - output: O, `[B, Hq, Sq, Dv]` in the cache's dtype, any strides; and its log-sum-exp, contiguous Float32
    ///     `[B, Hq, Sq]`.
    ///   - stream: where the work is queued.
    /// - Throws: as ``decode(query:cache:on:)``; nothing is queued (and the outputs are untouched) then.
    public func decode(
        query: DeviceTensor, cache: DeviceKVCache, into output: DeviceAttentionOutput, on stream: CUDAStream
    ) throws {
        try check(query: query, cache: cache, stream: stream)
        try check(output.output, named: "output", shape: outputShape, dtype: layout.dtype)
        try check(output.logSumExp, named: "log-sum-exp", shape: logSumExpShape, dtype: .float32)
        guard output.logSumExp.strides == Tensor.contiguousStrides(logSumExpShape) else {
            throw FlexAttentionError.invalidArgument(
                "the log-sum-exp must be contiguous (strides \(Tensor.contiguousStrides(logSumExpShape))), not strides"
                    + " \(output.logSumExp.strides)")
        }
        try enqueue(query: query, cache: cache, into: output, on: stream)
    }

    /// What every call checks before it queues anything: devices, the query's shape and dtype, the cache's layout,
    /// and that each sequence holds its new tokens.
    private func check(query: DeviceTensor, cache: DeviceKVCache, stream: CUDAStream) throws {
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "the stream is on CUDA device \(stream.device.ordinal), the plan on \(device.ordinal)")
        }
        guard cache.device === device else {
            throw FlexAttentionError.invalidArgument(
                "the cache is on CUDA device \(cache.device.ordinal), the plan on \(device.ordinal)")
        }
        guard cache.layout == layout else {
            throw FlexAttentionError.invalidArgument("the cache is \(cache.layout), the plan was made for \(layout)")
        }
        try check(query, named: "query", shape: queryShape, dtype: layout.dtype)
        try DecodeProblem.checkLengths(cache.lengths, queryLength: queryLength)
    }

    private func check(_ tensor: DeviceTensor, named name: String, shape: [Int], dtype: DType) throws {
        guard tensor.buffer.device === device else {
            throw FlexAttentionError.invalidArgument(
                "\(name) is on CUDA device \(tensor.buffer.device.ordinal), the plan on \(device.ordinal)")
        }
        try AttentionShape.require(shape: tensor.shape, named: name, expected: shape)
        guard tensor.dtype == dtype else {
            throw FlexAttentionError.mixedDTypes(expected: dtype, actual: tensor.dtype, tensor: name)
        }
    }

    /// Queues the decode kernel and, with several splits, the combine, on checked tensors.
    private func enqueue(
        query: DeviceTensor, cache: DeviceKVCache, into output: DeviceAttentionOutput, on stream: CUDAStream
    ) throws {
        let rows = layout.batch * queryHeads * queryLength
        // Split partials: Float32 O [splits, rows, Dv], then LSE [splits, rows].
        let partials = splits == 1 ? nil : try DeviceBuffer(
            device: device, byteCount: 4 * splits * rows * (layout.valueDim + 1), stream: stream)
        let partialOutput = partials?.address ?? 0
        let partialLogSumExp = partials.map { $0.address + UInt64(4 * splits * rows * layout.valueDim) } ?? 0
        CUDAGraph.retainIfCapturing([self, query.buffer, cache, output.output.buffer, output.logSumExp.buffer])
        let operands = DecodeOperands(
            query: TensorOperand(query), key: TensorOperand(cache.keys), value: TensorOperand(cache.values),
            blockTable: cache.tableBuffer?.address ?? 0, tableStride: cache.pageTable?.maxPagesPerSequence ?? 0,
            pageSize: layout.pageSize ?? layout.capacity, lengths: cache.lengthBuffer.address,
            output: TensorOperand(output.output), logSumExp: output.logSumExp.address,
            partialOutput: partialOutput, partialLogSumExp: partialLogSumExp, sinks: sinkBuffer?.address ?? 0,
            queryHeads: queryHeads, kvHeads: layout.kvHeads, queryLength: queryLength, splits: splits, scale: scale,
            vectorLoads: cache.keys.rowsAreVectorLoadable && cache.values.rowsAreVectorLoadable,
            mask: maskArguments?.operands, scoreMod: scoreArguments?.operands)
        try kernel.enqueue(operands, on: stream)
        try combine?.enqueue(
            DecodeCombineOperands(
                partialOutput: partialOutput, partialLogSumExp: partialLogSumExp, sinks: sinkBuffer?.address ?? 0,
                output: TensorOperand(output.output), logSumExp: output.logSumExp.address, queryHeads: queryHeads,
                queryLength: queryLength, splits: splits, rows: rows),
            on: stream)
        withExtendedLifetime(partials) {}
    }
}
