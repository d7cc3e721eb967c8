extension AttentionPlan {
    /// Queues the gradients of a scalar loss with respect to Q, K and V, given `dO = ∂loss/∂O`, on `stream`, into
    /// new tensors, and returns without waiting.
    ///
    /// Recomputes the probabilities from the saved log-sum-exp; deterministic (dQ, dK, dV, the sinks' and the Float
    /// tables' gradients have the same bits on every run; tables are summed in fixed point, ``TableGradientSum``),
    /// unless the plan's ``AttentionOptions/deterministicGradients`` is false: then above D = 128 a Hopper adds dQ
    /// in any order, which is faster. On a Hopper one kernel computes dK, dV and dQ (dQ's Float32 sums, then rounded);
    /// elsewhere dQ runs beside dK/dV on a stream of the plan's, forked from and joined back into `stream`. Either
    /// way work queued on `stream` afterwards sees all of them.
    ///
    /// With sinks, `forward` is the sink-adjusted result the forward pass returned: the kernels recompute the
    /// sink-adjusted probabilities from it, and the sinks' gradient is `−Σ e^(sink − LSE′) · Δ` over each head's
    /// rows, with `Δ = rowsum(dO · O′)`.
    ///
    /// - Parameters:
    ///   - query: the query given to the forward pass.
    ///   - key: the key given to the forward pass.
    ///   - value: the value given to the forward pass.
    ///   - forward: what the forward pass wrote.
    ///   - outputGradient: `dO`, `[B, Hq, Sq, Dv]` in the inputs' dtype, any strides.
    ///   - stream: where the work is queued and the new tensors allocated (stream-ordered).
    /// - Returns: dQ, dK, dV, the Float tables' gradients, and with sinks their gradient (Float32 `[Hq]`).
    /// - Throws: ``FlexAttentionError`` for tensors that do not match the plan or a plan made without its backward,
    ///   ``CUDAError`` for another device or no memory; nothing is queued then.
    public func backward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, forward: DeviceAttentionOutput,
        outputGradient: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionGradients {
        try checkBackwardInputs(query, key, value, forward, outputGradient, stream)
        func allocate(_ shape: [Int], _ dtype: DType) throws -> DeviceTensor {
            try DeviceTensor(device: device, dtype: dtype, shape: shape, stream: stream)
        }
        var tables: [String: DeviceTensor] = [:]
        for table in gradientTables { tables[table.name] = try allocate(table.shape, .float32) }
        let gradients = DeviceAttentionGradients(
            query: try allocate(shape.queryShape, shape.dtype), key: try allocate(shape.keyShape, shape.dtype),
            value: try allocate(shape.valueShape, shape.dtype), tableGradients: tables,
            sinkGradient: sinks == nil ? nil : try allocate([shape.queryHeads], .float32))
        try enqueueBackward(query, key, value, forward, outputGradient, into: gradients, on: stream)
        return gradients
    }

    /// Queues the backward pass on `stream` into caller-provided gradients, so that it can be captured in a
    /// ``CUDAGraph``: the only memory it allocates is scratch it frees on `stream` before returning (stream-ordered,
    /// which a graph records as its own allocation and free).
    ///
    /// - Parameters:
    ///   - query: the query given to the forward pass.
    ///   - key: the key given to the forward pass.
    ///   - value: the value given to the forward pass.
    ///   - forward: what the forward pass wrote.
    ///   - outputGradient: `dO`, `[B, Hq, Sq, Dv]` in the inputs' dtype, any strides.
    ///   - gradients: contiguous tensors of Q's, K's and V's shapes in their dtype, and a contiguous Float32 tensor
    ///     of each Float table's shape, by table name, for every Float table the score mod reads (they are zeroed
    ///     first, then summed into); with sinks, a contiguous Float32 `[Hq]` tensor for their gradient, and without
    ///     them none. None may share memory with another or with a tensor the call reads.
    ///   - stream: where the work is queued.
    /// - Throws: as ``backward(query:key:value:forward:outputGradient:on:)``, and ``FlexAttentionError`` for a sink
    ///   gradient missing, of another shape or dtype, or given to a plan without sinks, or for gradients that share
    ///   memory with each other or with an input; nothing is queued then.
    public func backward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, forward: DeviceAttentionOutput,
        outputGradient: DeviceTensor, into gradients: DeviceAttentionGradients, on stream: CUDAStream
    ) throws {
        try backward(
            query: query, key: key, value: value, forward: forward, outputGradient: outputGradient, into: gradients,
            addingToTableGradients: false, on: stream)
    }

    /// ``backward(query:key:value:forward:outputGradient:into:on:)``, adding to the table gradients rather than
    /// zeroing them first when `addingToTableGradients`: how a packed backward sums them over its sequences.
    func backward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, forward: DeviceAttentionOutput,
        outputGradient: DeviceTensor, into gradients: DeviceAttentionGradients, addingToTableGradients: Bool,
        on stream: CUDAStream
    ) throws {
        try checkBackwardInputs(query, key, value, forward, outputGradient, stream)
        for (name, tensor, expected) in [("query gradient", gradients.query, shape.queryShape),
                                         ("key gradient", gradients.key, shape.keyShape),
                                         ("value gradient", gradients.value, shape.valueShape)] {
            try check(tensor, named: name, shape: expected, dtype: shape.dtype, contiguous: true)
        }
        for table in gradientTables {
            guard let tensor = gradients.tableGradients[table.name] else {
                throw FlexAttentionError.invalidArgument("no gradient tensor for the score mod's table \(table.name)")
            }
            try check(tensor, named: "\(table.name)'s gradient", shape: table.shape, dtype: .float32, contiguous: true)
        }
        try check(sinkGradient: gradients.sinkGradient)
        let written = [("query gradient", gradients.query), ("key gradient", gradients.key), ("value gradient", gradients.value)]
            + gradientTables.compactMap { table in gradients.tableGradients[table.name].map { ("\(table.name)'s gradient", $0) } }
            + (gradients.sinkGradient.map { [("sinks' gradient", $0)] } ?? [])
        try checkApart(
            written: written,
            read: [("query", query), ("key", key), ("value", value), ("output", forward.output),
                   ("log-sum-exp", forward.logSumExp), ("output gradient", outputGradient)])
        try enqueueBackward(
            query, key, value, forward, outputGradient, into: gradients, zeroingTableGradients: !addingToTableGradients,
            on: stream)
    }

    /// What a backward call on a plan made without its backward throws.
    static let withoutBackward = FlexAttentionError.invalidArgument("this plan was made with includesBackward: false")

    /// The score mod's Float tables, whose gradients the backward pass sums (by the names the plan was made with).
    private var gradientTables: [ModTable] {
        mods.backwardScoreFunction?.arguments.tables.filter { $0.elementType == .float } ?? []
    }

    private func checkBackwardInputs(
        _ query: DeviceTensor, _ key: DeviceTensor, _ value: DeviceTensor, _ forward: DeviceAttentionOutput,
        _ outputGradient: DeviceTensor, _ stream: CUDAStream
    ) throws {
        guard includesBackward else {
            throw Self.withoutBackward
        }
        try checkInputs(query: query, key: key, value: value, stream: stream)
        try check(forward: forward)
        try check(outputGradient, named: "output gradient", shape: shape.outputShape, dtype: shape.dtype)
    }

    private func enqueueBackward(
        _ query: DeviceTensor, _ key: DeviceTensor, _ value: DeviceTensor, _ forward: DeviceAttentionOutput,
        _ outputGradient: DeviceTensor, into gradients: DeviceAttentionGradients, zeroingTableGradients: Bool = true,
        on stream: CUDAStream
    ) throws {
        guard let program = try programs(for: [query, key, value, outputGradient]).backward else {
            throw Self.withoutBackward
        }
        // Scratch, freed on `stream` after the kernels when these references go at the end of this call.
        let delta = try DeviceBuffer(device: device, byteCount: max(1, shape.logSumExpShape.reduce(1, *)) * 4, stream: stream)
        let blockRows = try !program.readsBlockRows ? nil : DeviceBuffer(
            device: device, byteCount: 4 * DeltaKernel.blockRowsCount(
                batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength), stream: stream)
        let sumsLayout = program.queryGradientSums(shape)
        let sums = try sumsLayout.map { try DeviceBuffer(device: device, byteCount: $0.bytes, stream: stream) }
        let sumsOperand = sums.flatMap { buffer in
            sumsLayout.map { program.queryGradientSumsOperand(in: buffer, turnsOffset: $0.turnsOffset) }
        }
        let slots = mods.backwardScoreFunction?.arguments.tables ?? []
        let takesTableGradients = mods.backwardScoreFunction?.tableGradientDefinition != nil
        let tablePointers = try takesTableGradients
            ? DeviceBuffer(device: device, byteCount: (slots.count + 1) * 8, stream: stream) : nil
        let operands = try program.operands(
            query: query, key: key, value: value, outputGradient: outputGradient, logSumExp: forward.logSumExp,
            delta: delta, blockRows: blockRows, gradients: (gradients.key, gradients.value, gradients.query),
            sums: sumsOperand,
            tableGradients: tablePointers?.address ?? 0, sizes: sizes, mods: mods, tensorMaps: tensorMaps)

        CUDAGraph.retainIfCapturing(
            [self, query.buffer, key.buffer, value.buffer, forward.output.buffer, forward.logSumExp.buffer,
             outputGradient.buffer, gradients.query.buffer, gradients.key.buffer, gradients.value.buffer]
                + gradients.tableGradients.values.map(\.buffer) + [gradients.sinkGradient?.buffer].compactMap { $0 })
        // The kernels sum each Float table's gradient into zeroed fixed-point slots (TableGradientSum, the same bits
        // in any order), turned into the caller's Float32 tensor after dQ.
        var tableSums: [(sums: DeviceBuffer, gradient: DeviceTensor)] = []
        if let tablePointers {
            for (index, table) in slots.enumerated() {
                var address: UInt64 = 0
                if table.elementType == .float, let gradient = gradients.tableGradients[table.name] {  // contiguous
                    let sums = try DeviceBuffer(
                        device: device, byteCount: max(1, gradient.shape.reduce(1, *)) * TableGradientSum.slotBytes,
                        stream: stream)
                    try sums.fill(0, stream: stream)
                    tableSums.append((sums, gradient))
                    address = sums.address
                }
                try tablePointers.write(address, atByteOffset: 8 * index, stream: stream)
            }
        }
        try program.delta.enqueue(
            DeltaOperands(
                output: TensorOperand(forward.output), outputGradient: TensorOperand(outputGradient),
                logSumExp: forward.logSumExp.address, delta: delta.address, blockRows: blockRows?.address ?? 0,
                queryHeads: shape.queryHeads, queryLength: shape.queryLength, valueDim: shape.valueDim,
                rows: DeltaKernel.rowCount(
                    batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                    blockRows: blockRows != nil)),
            on: stream)
        if let sinks, let sinkGradient = gradients.sinkGradient {  // present exactly when there are sinks (checked)
            try sinks.enqueueGradient(logSumExp: forward.logSumExp, delta: delta, into: sinkGradient, on: stream)
        }
        if let sums, let sumsLayout, let sumsOperand, let finish = program.queryFinish {
            // One kernel for dK, dV and dQ's sums (whose turn counters start at zero, and in any order the sums too),
            // then dQ rounded.
            try sums.fill(0, fromOffset: sumsLayout.zeroedFrom, count: sumsLayout.bytes - sumsLayout.zeroedFrom, stream: stream)
            try program.keyValue.enqueue(operands.keyValue, on: stream)
            try finish.enqueue(
                program.queryFinishOperands(shape, sums: sumsOperand, queryGradient: gradients.query, scale: sizes.scale),
                on: stream)
        } else if let query = program.query, let queryOperands = operands.query {
            // dK/dV on `stream`, dQ beside it: running them side by side fills the SMs that one kernel's last, uneven
            // wave (a causal mask's) leaves idle.
            try backwardFork.withLock { fork in
                guard let fork else { throw Self.withoutBackward }
                try fork.forked.record(on: stream)
                try fork.side.wait(for: fork.forked)
                try program.keyValue.enqueue(operands.keyValue, on: stream)
                try query.enqueue(queryOperands, on: fork.side)
                try fork.joined.record(on: fork.side)
                try stream.wait(for: fork.joined)
            }
        }
        for (sums, gradient) in tableSums {
            let count = gradient.shape.reduce(1, *)
            guard let finish = tableGradientFinish else { throw Self.withoutBackward }
            try LoadedKernel(
                function: finish, signature: TableGradientKernel.signature,
                grid: (TableGradientKernel.blocks(count), 1, 1), block: TableGradientKernel.threads
            ).enqueue(
                TableGradientOperands(
                    sums: sums.address, gradient: gradient.address, count: count, adding: !zeroingTableGradients),
                on: stream)
        }
        withExtendedLifetime((delta, blockRows, sums, tablePointers, tableSums)) {}
    }
}
