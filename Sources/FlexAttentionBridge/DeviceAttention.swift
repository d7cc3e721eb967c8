import FlexAttention

/// Prepared attention on a CUDA device: an ``AttentionPlan`` made once. Calls wrap the caller's tensors and stream,
/// allocate their outputs stream-ordered on that stream, queue any new table values and the kernels, and return
/// without waiting.
final class DeviceAttention: AttentionEngine {
    private let plan: AttentionPlan
    /// The score mod's Float tables, in the order backward returns their gradients.
    private let gradientTables: [(name: String, shape: [Int])]

    init(_ description: AttentionDescription, device: CUDADevice) throws {
        gradientTables = description.gradientTables.map { ($0.name, $0.shape) }
        let options = AttentionOptions(
            scale: description.scale, isCausal: description.causal != nil,
            causalAlignment: description.causal ?? .topLeft,
            mask: description.blockMask == nil ? description.mask : nil, blockMask: description.blockMask,
            scoreMod: description.scoreMod, sinks: description.sinks,
            deterministicGradients: description.deterministicGradients)
        plan = try AttentionPlan(
            shape: description.shape, options: options, device: device, includesBackward: description.includesBackward)
    }

    func forward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
        stream pointer: UnsafeMutableRawPointer?
    ) throws -> (output: ProducedTensor, logSumExp: ProducedTensor) {
        let stream = self.stream(pointer)
        let shape = plan.shape
        let result = DeviceAttentionOutput(
            output: try allocate(shape.outputShape, shape.dtype, stream),
            logSumExp: try allocate(shape.logSumExpShape, .float32, stream))
        try run(query, key, value, tables, into: result, on: stream)
        return (.device(result.output), .device(result.logSumExp))
    }

    func forward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
        into output: DLPackArgument, logSumExp: DLPackArgument, stream pointer: UnsafeMutableRawPointer?
    ) throws {
        let result = DeviceAttentionOutput(
            output: try output.deviceTensor(on: plan.device), logSumExp: try logSumExp.deviceTensor(on: plan.device))
        try run(query, key, value, tables, into: result, on: stream(pointer))
    }

    func backward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, output: DLPackArgument,
        logSumExp: DLPackArgument, outputGradient: DLPackArgument, tables: [TableValues],
        stream pointer: UnsafeMutableRawPointer?
    ) throws -> ProducedGradients {
        let stream = self.stream(pointer)
        let device = plan.device
        let (q, k, v) = (try query.deviceTensor(on: device), try key.deviceTensor(on: device),
                         try value.deviceTensor(on: device))
        let forward = DeviceAttentionOutput(
            output: try output.deviceTensor(on: device), logSumExp: try logSumExp.deviceTensor(on: device))
        let dO = try outputGradient.deviceTensor(on: device)
        var tableGradients: [String: DeviceTensor] = [:]
        for (name, shape) in gradientTables { tableGradients[name] = try allocate(shape, .float32, stream) }
        let shape = plan.shape
        let gradients = DeviceAttentionGradients(
            query: try allocate(shape.queryShape, shape.dtype, stream),
            key: try allocate(shape.keyShape, shape.dtype, stream),
            value: try allocate(shape.valueShape, shape.dtype, stream), tableGradients: tableGradients,
            sinkGradient: plan.options.sinks == nil ? nil : try allocate([shape.queryHeads], .float32, stream))
        try update(tables, on: stream)
        try plan.backward(
            query: q, key: k, value: v, forward: forward, outputGradient: dO, into: gradients, on: stream)
        return ProducedGradients(
            query: .device(gradients.query), key: .device(gradients.key), value: .device(gradients.value),
            tables: gradientTables.compactMap { gradients.tableGradients[$0.name].map { .device($0) } },
            sink: gradients.sinkGradient.map { .device($0) })
    }

    /// The caller's `CUstream` (NULL: the legacy default stream).
    private func stream(_ pointer: UnsafeMutableRawPointer?) -> CUDAStream {
        CUDAStream(unowned: UInt(bitPattern: pointer), device: plan.device)
    }

    private func allocate(_ shape: [Int], _ dtype: DType, _ stream: CUDAStream) throws -> DeviceTensor {
        try DeviceTensor(device: plan.device, dtype: dtype, shape: shape, stream: stream)
    }

    /// The forward pass into `result`, after any new table values, all queued on `stream`.
    private func run(
        _ query: DLPackArgument, _ key: DLPackArgument, _ value: DLPackArgument, _ tables: [TableValues],
        into result: DeviceAttentionOutput, on stream: CUDAStream
    ) throws {
        let device = plan.device
        let (q, k, v) = (try query.deviceTensor(on: device), try key.deviceTensor(on: device),
                         try value.deviceTensor(on: device))
        try update(tables, on: stream)
        try plan.forward(query: q, key: k, value: v, into: result, on: stream)
    }

    /// Queues new values of the score mod's Float tables on `stream`: device tables are copied device to device,
    /// host tables staged through stream-ordered device memory. Nothing waits.
    private func update(_ tables: [TableValues], on stream: CUDAStream) throws {
        guard !tables.isEmpty else { return }
        var values: [String: DeviceTensor] = [:]
        for table in tables {
            guard table.values.location == .host else {
                values[table.name] = try table.values.deviceTensor(on: plan.device)
                continue
            }
            let floats = try table.values.floats()
            let staged = try allocate(table.values.shape, .float32, stream)
            try floats.withUnsafeBytes { try staged.buffer.copy(from: $0, stream: stream) }
            values[table.name] = staged
        }
        try plan.updateScoreModTables(values, on: stream)
    }
}
