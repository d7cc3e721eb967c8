extension PackedAttentionPlan {
    /// Queues attention over every sequence on `stream`, into new tensors, and returns without waiting.
    ///
    /// - Parameters:
    ///   - query: `[totalQ, Hq, D]`, any strides.
    ///   - key: `[totalK, Hkv, D]`, any strides.
    ///   - value: `[totalK, Hkv, Dv]`, any strides.
    ///   - stream: where the work is queued, and the new tensors and scratch allocated (stream-ordered).
    /// - Returns: `O`, contiguous `[totalQ, Hq, Dv]` in the inputs' dtype, and the log-sum-exp, contiguous Float32
    ///   `[Hq, totalQ]` (FlashAttention's varlen layout); rows of a sequence without keys are 0 and −∞.
    /// - Throws: ``FlexAttentionError`` for tensors that do not match the plan, ``CUDAError`` for another device or
    ///   no memory; nothing is queued then.
    public func forward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionOutput {
        try checkInputs(query: query, key: key, value: value, stream: stream)
        let shape = packed.whole
        let output = try DeviceTensor(device: device, dtype: shape.dtype, shape: packed.outputShape, stream: stream)
        let logSumExp = try DeviceTensor(device: device, dtype: .float32, shape: packed.logSumExpShape, stream: stream)
        // Each sequence's log-sum-exp, which its plan writes contiguously, on its way to its columns.
        let rowLogSumExp = try DeviceBuffer(
            device: device, byteCount: shape.queryHeads * longestSequence.queries * 4, stream: stream)
        // The row copies and fills below write these; the sequences' plans retain the rest.
        CUDAGraph.retainIfCapturing([self, output.buffer, logSumExp.buffer])
        if packed.hasQueriesWithoutKeys { try fillRowsWithoutKeys(output: output, logSumExp: logSumExp, on: stream) }
        for run in runs {
            let rows = run.sequence.queries
            let sequenceLogSumExp = try DeviceTensor(
                buffer: rowLogSumExp, dtype: .float32, shape: [1, shape.queryHeads, rows.count],
                strides: [shape.queryHeads * rows.count, rows.count, 1])
            try run.plan.forward(
                query: query.packedRows(rows), key: key.packedRows(run.sequence.keys),
                value: value.packedRows(run.sequence.keys),
                into: DeviceAttentionOutput(output: output.packedRows(rows), logSumExp: sequenceLogSumExp), on: stream)
            try logSumExp.buffer.copyRows(
                shape.queryHeads, bytes: rows.count * 4, from: rowLogSumExp, sourceOffset: 0, sourcePitch: rows.count * 4,
                toOffset: rows.lowerBound * 4, pitch: shape.queryLength * 4, stream: stream)
        }
        withExtendedLifetime(rowLogSumExp) {}
        return DeviceAttentionOutput(output: output, logSumExp: logSumExp)
    }

    /// Sets O = 0 and LSE = −∞ on the rows of sequences that have queries but no keys (no plan runs them). The
    /// whole log-sum-exp is set, the sequences that run overwrite theirs.
    private func fillRowsWithoutKeys(output: DeviceTensor, logSumExp: DeviceTensor, on stream: CUDAStream) throws {
        let rowBytes = packed.whole.queryHeads * packed.whole.valueDim * output.dtype.byteSize
        for index in 0..<sequences.count where sequences.keyRange(index).isEmpty {
            let rows = sequences.queryRange(index)
            try output.buffer.fill(0, fromOffset: rows.lowerBound * rowBytes, count: rows.count * rowBytes, stream: stream)
        }
        try logSumExp.buffer.fill(
            word: (-Float.infinity).bitPattern, fromOffset: 0, count: logSumExp.shape.reduce(1, *), stream: stream)
    }
}
