extension ContextParallelPlan {
    /// Queues ring attention's forward pass for every rank this process drives, each on its stream, and returns
    /// without waiting.
    ///
    /// - Parameters:
    ///   - inputs: one shard per local rank (``ContextParallelGroup/ranks`` order), each ``shardShape``, on that
    ///     rank's device.
    ///   - streams: one per local rank, on its device: where its work is queued and its outputs allocated.
    /// - Returns: per local rank, `O` (contiguous `[B, Hq, 2·chunk, Dv]`, the inputs' dtype) and its log-sum-exp
    ///   (Float32 `[B, Hq, 2·chunk]`) over the whole sequence, rows in the shard's order.
    /// - Throws: ``FlexAttentionError`` for inputs that do not match, ``CUDAError`` or ``NCCLError`` when the device
    ///   or communication fails; nothing is queued when inputs are refused.
    public func forward(_ inputs: [ContextParallelInputs], on streams: [CUDAStream]) throws -> [DeviceAttentionOutput] {
        try check(inputs, streams: streams)
        let outputs = try zip(inputs.indices, streams).map { local, stream in
            DeviceAttentionOutput(
                output: try DeviceTensor(device: stream.device, dtype: shape.dtype, shape: shardShape.outputShape, stream: stream),
                logSumExp: try DeviceTensor(device: stream.device, dtype: .float32, shape: shardShape.logSumExpShape, stream: stream))
        }
        for headGroup in 0..<headGroups {
            try forward(inputs, into: outputs, headGroup: headGroup, streams: streams)
        }
        return outputs
    }

    /// ``forward(_:on:)`` for a process that drives one rank.
    public func forward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionOutput {
        try forward([ContextParallelInputs(query: query, key: key, value: value)], on: [stream])[0]
    }

    /// One group of heads: each query chunk's pieces merge, in schedule order, into a Float32 running result, the
    /// last one into the output.
    private func forward(
        _ inputs: [ContextParallelInputs], into outputs: [DeviceAttentionOutput], headGroup: Int, streams: [CUDAStream]
    ) throws {
        let rings = try inputs.indices.map { try RingRank(plan: self, local: $0, stream: streams[$0], backward: false) }
        let queryHeads = heads(headGroup).query
        var chunks = [[ChunkResult]]()
        for ring in rings {
            let output = outputs[ring.local]
            chunks.append(try (0..<2).map { chunk in
                try ChunkResult(
                    plan: self, rank: ring.rank, chunk: chunk, stream: ring.stream,
                    output: output.output.slice(heads: queryHeads, rows: rows(chunk: chunk)),
                    logSumExp: output.logSumExp.rowSlice(heads: queryHeads, rows: rows(chunk: chunk)))
            })
        }
        try runRing(rings, inputs: inputs, headGroup: headGroup, returnGradients: false) { ring, step in
            let keyValues = try keyValues(ring, step: step, inputs: inputs[ring.local], headGroup: headGroup)
            var pieces: [[DeviceAttentionOutput]] = [[], []]
            for (index, pair) in schedule.steps[ring.rank][step].pairs.enumerated() {
                guard let (key, value) = keyValues[pair.keyChunk] else { continue }  // a pair implies its rows
                let query = try inputs[ring.local].query.slice(heads: queryHeads, rows: rows(chunk: pair.queryChunk))
                pieces[pair.queryChunk].append(try pairPlans[ring.local][step][index][headGroup].forward(
                    query: query, key: key, value: value, on: ring.stream))
            }
            for (chunk, parts) in pieces.enumerated() where !parts.isEmpty {
                try chunks[ring.local][chunk].add(parts, on: ring.stream)
            }
        }
        for (ring, results) in zip(rings, chunks) {
            for result in results { try result.finish(on: ring.stream) }
        }
    }
}

/// One query chunk's result as its pieces arrive: each step's pieces merged, in order and in one launch, into a
/// Float32 running result, the last step's straight into the output (and its log-sum-exp into a contiguous buffer
/// the merge needs, copied out at the end).
private final class ChunkResult {
    /// Steps with pieces for this chunk.
    private let steps: Int
    private var merged = 0
    /// The Float32 running result; only when more than one step merges (or none, to give the empty result).
    private let running: DeviceAttentionOutput?
    private let final: DeviceAttentionOutput
    private let logSumExp: DeviceTensor

    init(
        plan: ContextParallelPlan, rank: Int, chunk: Int, stream: CUDAStream, output: DeviceTensor,
        logSumExp: DeviceTensor
    ) throws {
        steps = plan.schedule.steps[rank].filter { $0.pairs.contains { $0.queryChunk == chunk } }.count
        let rowShape = Array(output.shape.dropLast())
        func allocate(_ shape: [Int]) throws -> DeviceTensor {
            try DeviceTensor(device: stream.device, dtype: .float32, shape: shape, stream: stream)
        }
        running = steps == 1 ? nil
            : DeviceAttentionOutput(output: try allocate(output.shape), logSumExp: try allocate(rowShape))
        final = DeviceAttentionOutput(output: output, logSumExp: try allocate(rowShape))
        self.logSumExp = logSumExp
        if steps == 0, let running {  // no key kept for any row: O = 0, LSE = −∞, as one GPU gives
            try running.output.buffer.fill(0, stream: stream)
            try running.logSumExp.buffer.fill(word: (-Float.infinity).bitPattern, fromOffset: 0,
                                              count: rowShape.reduce(1, *), stream: stream)
        }
    }

    /// Merges one step's pieces.
    func add(_ pieces: [DeviceAttentionOutput], on stream: CUDAStream) throws {
        let parts = (merged == 0 ? [] : [running].compactMap { $0 }) + pieces
        merged += 1
        try DeviceAttentionOutput.merging(parts, into: merged == steps ? final : running ?? final, on: stream)
    }

    func finish(on stream: CUDAStream) throws {
        if steps == 0, let running { try DeviceAttentionOutput.merging([running], into: final, on: stream) }
        let rows = final.logSumExp
        try logSumExp.accumulate(
            rows.rowSlice(heads: 0..<rows.shape[1], rows: 0..<rows.shape[2]), adding: false, on: stream)
    }
}
