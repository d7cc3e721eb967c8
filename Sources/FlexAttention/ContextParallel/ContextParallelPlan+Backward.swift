extension ContextParallelPlan {
    /// Queues ring attention's backward pass for every rank this process drives, each on its stream, and returns
    /// without waiting.
    ///
    /// Keys and values travel the ring again; each step's key/value gradients travel back to their owner, who adds
    /// them, in step order, to Float32 sums. The query gradient sums its pieces in Float32 too; each is rounded once,
    /// into the inputs' dtype, at the end.
    ///
    /// A score mod's Float tables get, on each rank, the gradient of the loss through that rank's queries: sum them
    /// over the ranks (an all-reduce, as data-parallel parameter gradients are summed) for the whole gradient.
    ///
    /// - Parameters:
    ///   - inputs: the shards given to the forward pass.
    ///   - forward: what the forward pass returned, per local rank.
    ///   - outputGradients: `dO` per local rank, `[B, Hq, 2·chunk, Dv]` in the inputs' dtype, any strides.
    ///   - streams: one per local rank, on its device.
    /// - Returns: per local rank, dQ, dK, dV (contiguous, the inputs' dtype) and the Float tables' gradients.
    /// - Throws: ``FlexAttentionError`` for inputs that do not match or a plan made without its backward,
    ///   ``CUDAError`` or ``NCCLError`` when the device or communication fails; nothing is queued when inputs are
    ///   refused.
    public func backward(
        _ inputs: [ContextParallelInputs], forward: [DeviceAttentionOutput], outputGradients: [DeviceTensor],
        on streams: [CUDAStream]
    ) throws -> [DeviceAttentionGradients] {
        guard includesBackward else { throw AttentionPlan.withoutBackward }
        try check(inputs, streams: streams)
        guard forward.count == inputs.count, outputGradients.count == inputs.count else {
            throw FlexAttentionError.invalidArgument(
                "backward needs a forward result and an output gradient per local rank (\(inputs.count)), not"
                    + " \(forward.count) and \(outputGradients.count)")
        }
        for (local, (result, gradient)) in zip(forward, outputGradients).enumerated() {
            let device = streams[local].device
            try result.output.check(named: "output", device: device, shape: shardShape.outputShape, dtype: shape.dtype)
            try result.logSumExp.check(
                named: "log-sum-exp", device: device, shape: shardShape.logSumExpShape, dtype: .float32)
            try gradient.check(named: "output gradient", device: device, shape: shardShape.outputShape, dtype: shape.dtype)
        }
        let tables = problem.scoreMod?.expression.arguments.tables.filter { $0.elementType == .float } ?? []
        let gradients = try streams.map { stream in
            func allocate(_ shape: [Int], _ dtype: DType) throws -> DeviceTensor {
                try DeviceTensor(device: stream.device, dtype: dtype, shape: shape, stream: stream)
            }
            var tableGradients: [String: DeviceTensor] = [:]
            for table in tables {
                let gradient = try allocate(table.shape, .float32)
                try gradient.buffer.fill(0, stream: stream)
                tableGradients[table.name] = gradient
            }
            return DeviceAttentionGradients(
                query: try allocate(shardShape.queryShape, shape.dtype), key: try allocate(shardShape.keyShape, shape.dtype),
                value: try allocate(shardShape.valueShape, shape.dtype), tableGradients: tableGradients)
        }
        for headGroup in 0..<headGroups {
            try backward(inputs, forward: forward, outputGradients: outputGradients, into: gradients,
                         headGroup: headGroup, streams: streams)
        }
        return gradients
    }

    /// ``backward(_:forward:outputGradients:on:)`` for a process that drives one rank.
    public func backward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, forward: DeviceAttentionOutput,
        outputGradient: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionGradients {
        try backward([ContextParallelInputs(query: query, key: key, value: value)], forward: [forward],
                     outputGradients: [outputGradient], on: [stream])[0]
    }

    /// One group of heads.
    private func backward(
        _ inputs: [ContextParallelInputs], forward: [DeviceAttentionOutput], outputGradients: [DeviceTensor],
        into gradients: [DeviceAttentionGradients], headGroup: Int, streams: [CUDAStream]
    ) throws {
        let rings = try inputs.indices.map { try RingRank(plan: self, local: $0, stream: streams[$0], backward: true) }
        let (keyHeads, queryHeads) = heads(headGroup)
        let sums = try rings.map { ring in try GradientSums(plan: self, heads: (keyHeads, queryHeads), forward: forward[ring.local], stream: ring.stream) }
        try runRing(rings, inputs: inputs, headGroup: headGroup, returnGradients: true, compute: { ring, step in
            let local = ring.local
            let keyValues = try keyValues(ring, step: step, inputs: inputs[local], headGroup: headGroup)
            let layout = transfer(rank: ring.rank, step: step)
            var returned = Set<Int>()  // key chunks whose gradient slot holds a first piece
            for (index, pair) in schedule.steps[ring.rank][step].pairs.enumerated() {
                guard let (key, value) = keyValues[pair.keyChunk] else { continue }  // a pair implies its rows
                let rows = rows(chunk: pair.queryChunk)
                let plan = pairPlans[local][step][index][headGroup]
                func allocate(_ shape: [Int]) throws -> DeviceTensor {
                    try DeviceTensor(device: ring.stream.device, dtype: self.shape.dtype, shape: shape, stream: ring.stream)
                }
                let piece = DeviceAttentionGradients(
                    query: try allocate(plan.shape.queryShape), key: try allocate(plan.shape.keyShape),
                    value: try allocate(plan.shape.valueShape), tableGradients: gradients[local].tableGradients)
                try plan.backward(
                    query: inputs[local].query.slice(heads: queryHeads, rows: rows), key: key, value: value,
                    forward: DeviceAttentionOutput(
                        output: forward[local].output.slice(heads: queryHeads, rows: rows),
                        logSumExp: sums[local].logSumExp[pair.queryChunk]),
                    outputGradient: outputGradients[local].slice(heads: queryHeads, rows: rows), into: piece,
                    addingToTableGradients: true, on: ring.stream)
                try sums[local].query.slice(heads: 0..<queryHeads.count, rows: rows)
                    .accumulate(piece.query, adding: true, on: ring.stream)
                if step == 0 {
                    try sums[local].add(key: piece.key, value: piece.value, chunk: pair.keyChunk,
                                        rows: layout.keyRows[pair.keyChunk], plan: self, on: ring.stream)
                } else {
                    let first = returned.insert(pair.keyChunk).inserted
                    for (gradient, isValue) in [(piece.key, false), (piece.value, true)] {
                        guard let slot = try layout.view(ring.gradients[step % 2], dtype: .float32,
                                                         chunk: pair.keyChunk, value: isValue) else { continue }
                        try slot.accumulate(gradient, adding: !first, on: ring.stream)
                    }
                }
            }
        }, addReturned: { ring, _, layout in
            for chunk in 0..<2 {
                guard let into = ring.gradientsReceived,
                      let key = try layout.view(into, dtype: .float32, chunk: chunk, value: false),
                      let value = try layout.view(into, dtype: .float32, chunk: chunk, value: true) else { continue }
                try sums[ring.local].add(
                    key: key, value: value, chunk: chunk, rows: layout.keyRows[chunk], plan: self, on: ring.communication)
            }
        })
        for ring in rings {
            let local = ring.local
            let (sum, result) = (sums[local], gradients[local])
            try result.query.slice(heads: queryHeads, rows: 0..<shardShape.queryLength)
                .accumulate(sum.query, adding: false, on: ring.stream)
            try result.key.slice(heads: keyHeads, rows: 0..<shardShape.keyLength)
                .accumulate(sum.key, adding: false, on: ring.stream)
            try result.value.slice(heads: keyHeads, rows: 0..<shardShape.keyLength)
                .accumulate(sum.value, adding: false, on: ring.stream)
        }
    }
}

/// One rank's Float32 gradient sums for one group of heads, and each query chunk's log-sum-exp in the contiguous
/// form the pair plans read.
private struct GradientSums {
    let query: DeviceTensor
    let key: DeviceTensor
    let value: DeviceTensor
    let logSumExp: [DeviceTensor]

    init(
        plan: ContextParallelPlan, heads: (key: Range<Int>, query: Range<Int>), forward: DeviceAttentionOutput,
        stream: CUDAStream
    ) throws {
        let shard = plan.shardShape
        func zeros(_ shape: [Int]) throws -> DeviceTensor {
            let tensor = try DeviceTensor(device: stream.device, dtype: .float32, shape: shape, stream: stream)
            try tensor.buffer.fill(0, stream: stream)
            return tensor
        }
        query = try zeros([shard.batch, heads.query.count, shard.queryLength, shard.headDim])
        key = try zeros([shard.batch, heads.key.count, shard.keyLength, shard.headDim])
        value = try zeros([shard.batch, heads.key.count, shard.keyLength, shard.valueDim])
        logSumExp = try (0..<2).map { chunk in
            let rows = try DeviceTensor(
                device: stream.device, dtype: .float32, shape: [shard.batch, heads.query.count, plan.schedule.chunkLength],
                stream: stream)
            try rows.rowSlice(heads: 0..<rows.shape[1], rows: 0..<rows.shape[2]).accumulate(
                forward.logSumExp.rowSlice(heads: heads.query, rows: plan.rows(chunk: chunk)), adding: false, on: stream)
            return rows
        }
    }

    /// Adds key and value gradients of rows `rows` of local chunk `chunk` (any dtype) on `stream`.
    func add(
        key keyGradient: DeviceTensor, value valueGradient: DeviceTensor, chunk: Int, rows: Range<Int>,
        plan: ContextParallelPlan, on stream: CUDAStream
    ) throws {
        let rows = plan.rows(chunk: chunk, within: rows)
        try key.slice(heads: 0..<key.shape[1], rows: rows).accumulate(keyGradient, adding: true, on: stream)
        try value.slice(heads: 0..<value.shape[1], rows: rows).accumulate(valueGradient, adding: true, on: stream)
    }
}
