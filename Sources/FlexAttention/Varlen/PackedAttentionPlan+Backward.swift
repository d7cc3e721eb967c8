extension PackedAttentionPlan {
    /// Queues the gradients of a scalar loss with respect to the packed Q, K and V, given `dO = ∂loss/∂O`, on
    /// `stream`, into new tensors, and returns without waiting.
    ///
    /// Each sequence runs its plan's backward (see
    /// ``AttentionPlan/backward(query:key:value:forward:outputGradient:on:)``); the Float tables' gradients are
    /// summed over the sequences in one set of tensors.
    ///
    /// - Parameters:
    ///   - query: the query given to the forward pass.
    ///   - key: the key given to the forward pass.
    ///   - value: the value given to the forward pass.
    ///   - forward: what the forward pass wrote: `O` `[totalQ, Hq, Dv]` (any strides) and its log-sum-exp,
    ///     contiguous Float32 `[Hq, totalQ]`.
    ///   - outputGradient: `dO`, `[totalQ, Hq, Dv]` in the inputs' dtype, any strides.
    ///   - stream: where the work is queued and the new tensors and scratch allocated (stream-ordered).
    /// - Returns: dQ, dK and dV, contiguous with Q's, K's and V's shapes in their dtype (zero on the rows of a
    ///   sequence without keys or without queries), and each Float table's gradient.
    /// - Throws: ``FlexAttentionError`` for tensors that do not match the plan or a plan made without its backward,
    ///   ``CUDAError`` for another device or no memory; nothing is queued then.
    public func backward(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, forward: DeviceAttentionOutput,
        outputGradient: DeviceTensor, on stream: CUDAStream
    ) throws -> DeviceAttentionGradients {
        guard includesBackward else {
            throw FlexAttentionError.invalidArgument("this plan was made with includesBackward: false")
        }
        try checkInputs(query: query, key: key, value: value, stream: stream)
        try check(forward: forward)
        try outputGradient.check(
            named: "output gradient", device: device, shape: packed.outputShape, dtype: packed.whole.dtype)

        let gradients = try zeroedGradients(on: stream)
        // The row copies and fills below read or write these; the sequences' plans retain the rest.
        CUDAGraph.retainIfCapturing(
            [self, forward.logSumExp.buffer, gradients.query.buffer, gradients.key.buffer, gradients.value.buffer]
                + gradients.tableGradients.values.map(\.buffer))
        let scratch = try SequenceScratch(self, on: stream)
        let (queryHeads, keyHeads) = (packed.whole.queryHeads, packed.whole.keyValueHeads)
        for run in runs {
            let (rows, keys) = (run.sequence.queries, run.sequence.keys)
            try scratch.logSumExpRows.copyRows(
                queryHeads, bytes: rows.count * 4, from: forward.logSumExp.buffer,
                sourceOffset: (forward.logSumExp.offset + rows.lowerBound) * 4,
                sourcePitch: packed.whole.queryLength * 4, toOffset: 0, pitch: rows.count * 4, stream: stream)
            let sequenceGradients = try scratch.gradients(queries: rows.count, keys: keys.count, tables: gradients)
            try run.plan.backward(
                query: query.packedRows(rows), key: key.packedRows(keys), value: value.packedRows(keys),
                forward: DeviceAttentionOutput(
                    output: forward.output.packedRows(rows), logSumExp: scratch.logSumExp(queries: rows.count)),
                outputGradient: outputGradient.packedRows(rows), into: sequenceGradients, addingToTableGradients: true,
                on: stream)
            for (from, to, heads, part) in [(sequenceGradients.query, gradients.query, queryHeads, rows),
                                             (sequenceGradients.key, gradients.key, keyHeads, keys),
                                             (sequenceGradients.value, gradients.value, keyHeads, keys)] {
                try Self.scatter(from, heads: heads, into: to, rows: part, on: stream)
            }
        }
        withExtendedLifetime(scratch) {}
        return gradients
    }

    /// dQ, dK, dV and the table gradients, zeroed on `stream`: rows no sequence writes stay 0, and the table
    /// gradients are summed into.
    private func zeroedGradients(on stream: CUDAStream) throws -> DeviceAttentionGradients {
        func zeros(_ shape: [Int], _ dtype: DType) throws -> DeviceTensor {
            let tensor = try DeviceTensor(device: device, dtype: dtype, shape: shape, stream: stream)
            try tensor.buffer.fill(0, stream: stream)
            return tensor
        }
        var tables: [String: DeviceTensor] = [:]
        for table in packed.gradientTables { tables[table.name] = try zeros(table.shape, .float32) }
        let dtype = packed.whole.dtype
        return DeviceAttentionGradients(
            query: try zeros(packed.queryShape, dtype), key: try zeros(packed.keyShape, dtype),
            value: try zeros(packed.valueShape, dtype), tableGradients: tables)
    }

    /// Copies a sequence's contiguous gradient `[1, H, n, D]` into rows `rows` of a packed contiguous `[total, H, D]`
    /// tensor: one row copy per head.
    private static func scatter(
        _ gradient: DeviceTensor, heads: Int, into packed: DeviceTensor, rows: Range<Int>, on stream: CUDAStream
    ) throws {
        let rowBytes = gradient.shape[3] * gradient.dtype.byteSize
        for head in 0..<heads {
            try packed.buffer.copyRows(
                rows.count, bytes: rowBytes, from: gradient.buffer,
                sourceOffset: gradient.offset * gradient.dtype.byteSize + head * rows.count * rowBytes,
                sourcePitch: rowBytes, toOffset: (rows.lowerBound * heads + head) * rowBytes, pitch: heads * rowBytes,
                stream: stream)
        }
    }
}

/// The scratch a packed backward call passes each sequence through, sized for the longest sequence and reused by
/// every sequence in stream order: its log-sum-exp gathered from the packed columns, and its gradients before they
/// are scattered into the packed rows.
private struct SequenceScratch {
    let logSumExpRows: DeviceBuffer
    let queryGradient: DeviceBuffer
    let keyGradient: DeviceBuffer
    let valueGradient: DeviceBuffer
    let whole: AttentionShape

    init(_ plan: PackedAttentionPlan, on stream: CUDAStream) throws {
        let (whole, longest, device) = (plan.packed.whole, plan.longestSequence, plan.device)
        let size = whole.dtype.byteSize
        logSumExpRows = try DeviceBuffer(
            device: device, byteCount: whole.queryHeads * longest.queries * 4, stream: stream)
        queryGradient = try DeviceBuffer(
            device: device, byteCount: whole.queryHeads * longest.queries * whole.headDim * size, stream: stream)
        keyGradient = try DeviceBuffer(
            device: device, byteCount: whole.keyValueHeads * longest.keys * whole.headDim * size, stream: stream)
        valueGradient = try DeviceBuffer(
            device: device, byteCount: whole.keyValueHeads * longest.keys * whole.valueDim * size, stream: stream)
        self.whole = whole
    }

    /// The log-sum-exp of a sequence of `queries` rows, contiguous `[1, Hq, queries]`.
    func logSumExp(queries: Int) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: logSumExpRows, dtype: .float32, shape: [1, whole.queryHeads, queries],
            strides: Tensor.contiguousStrides([1, whole.queryHeads, queries]))
    }

    /// Contiguous gradients for a sequence of `queries` and `keys` rows, summing into the packed `tables`'.
    func gradients(queries: Int, keys: Int, tables: DeviceAttentionGradients) throws -> DeviceAttentionGradients {
        func view(_ buffer: DeviceBuffer, _ shape: [Int]) throws -> DeviceTensor {
            try DeviceTensor(buffer: buffer, dtype: whole.dtype, shape: shape, strides: Tensor.contiguousStrides(shape))
        }
        return DeviceAttentionGradients(
            query: try view(queryGradient, [1, whole.queryHeads, queries, whole.headDim]),
            key: try view(keyGradient, [1, whole.keyValueHeads, keys, whole.headDim]),
            value: try view(valueGradient, [1, whole.keyValueHeads, keys, whole.valueDim]),
            tableGradients: tables.tableGradients)
    }
}
