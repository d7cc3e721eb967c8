/// Attention's backward pass on a CUDA device: the entry point behind `Attention(device: .cuda(n)).backward`.
///
/// Three kernels: Delta (`Σ dO · O` per row), dK/dV (one CTA per key block and key/value head, walking the
/// transposed block list over the group's query heads) and dQ (one CTA per query block, walking the forward
/// block list). Both gradient kernels sum in a fixed order, so dQ, dK and dV are deterministic; Float tables'
/// gradients are summed with atomics.
struct CUDABackward {
    let device: CUDADevice
    let cache: KernelCache

    /// Copies host tensors to the device, runs, and copies the gradients back in the inputs' dtype.
    func run(
        query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput, outputGradient: Tensor,
        options: AttentionOptions
    ) throws -> AttentionGradients {
        let shape = try AttentionShape(query: query, key: key, value: value)
        // The kernels read O and dO in the inputs' dtype and the LSE as contiguous Float32.
        func matching(_ tensor: Tensor, _ dtype: DType) throws -> Tensor {
            tensor.dtype == dtype ? tensor : try Tensor(tensor.floats(), shape: tensor.shape, dtype: dtype)
        }
        let upload = { (tensor: Tensor) in try DeviceTensor(copying: tensor, to: device) }
        let launch = try prepare(
            shape: shape, query: upload(query), key: upload(key), value: upload(value),
            output: upload(matching(forward.output, shape.dtype)),
            logSumExp: upload(Tensor(forward.logSumExp.floats(), shape: forward.logSumExp.shape)),
            outputGradient: upload(matching(outputGradient, shape.dtype)), options: options)
        try launch.enqueue()
        try device.synchronize()
        var tables: [String: Tensor] = [:]
        for (table, buffer) in launch.tableGradients {
            var values = [Float](repeating: 0, count: table.shape.reduce(1, *))
            try values.withUnsafeMutableBytes { try buffer.copy(to: $0) }
            tables[table.name] = try Tensor(values, shape: table.shape)
        }
        return AttentionGradients(
            query: try launch.queryGradient.copyToHost(), key: try launch.keyGradient.copyToHost(),
            value: try launch.valueGradient.copyToHost(), tableGradients: tables)
    }

    /// Compiles (or finds) the kernels, allocates the gradients and uploads the block lists and mod arguments.
    /// `output` and `outputGradient` have the inputs' dtype; `logSumExp` is contiguous Float32.
    func prepare(
        shape: AttentionShape, query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, output: DeviceTensor,
        logSumExp: DeviceTensor, outputGradient: DeviceTensor, options: AttentionOptions
    ) throws -> BackwardLaunch {
        let mods = try CUDAAttentionMods(options, includesGradients: true, device: device)
        let scale = try shape.resolvedScale(options.scale)
        let (b, hq, hkv, sq, skv) = (shape.batch, shape.queryHeads, shape.keyValueHeads, shape.queryLength, shape.keyLength)

        let delta = try DeviceBuffer(device: device, byteCount: max(1, b * hq * sq) * 4)
        let deltaKernel = DeltaKernel(dtype: shape.dtype)
        let deltaLaunch = KernelLaunch(
            function: try cache.function(for: deltaKernel, on: device),
            grid: ((b * hq * sq + DeltaKernel.rowsPerBlock - 1) / DeltaKernel.rowsPerBlock, 1, 1),
            block: DeltaKernel.threads,
            arguments: [.pointer(output.address), .pointer(outputGradient.address), .buffer(delta)]
                + [hq, sq, shape.valueDim].map { .int32(Int32($0)) }
                + (output.strides + outputGradient.strides).map { .int64(Int64($0)) } + [.int64(Int64(b * hq * sq))])

        let keyGradient = try Self.allocate([b, hkv, skv, shape.headDim], shape.dtype, device)
        let valueGradient = try Self.allocate([b, hkv, skv, shape.valueDim], shape.dtype, device)
        let queryGradient = try Self.allocate([b, hq, sq, shape.headDim], shape.dtype, device)
        // One zeroed Float32 buffer per Float table of the score mod; the dQ kernel gets a pointer per table slot.
        let slots = mods.scoreFunction?.arguments.tables ?? []
        let tableGradients = try slots.map { table -> DeviceBuffer? in
            guard table.elementType == .float else { return nil }
            let buffer = try DeviceBuffer(device: device, byteCount: table.shape.reduce(1, *) * 4)
            try buffer.fill(0)
            return buffer
        }
        let tablePointers = try DeviceBuffer(device: device, copying: tableGradients.map { $0?.address ?? 0 } + [0])

        let inputs = [query, key, value, outputGradient]
        let vectorLoads = inputs.allSatisfy(CUDAForward.rowsAreVectorLoadable)
        let common: [KernelArgument] = (inputs + [logSumExp]).map { .pointer($0.address) } + [.buffer(delta)]
        func tail(_ blocks: CUDABlockList?) -> [KernelArgument] {
            [hq, hkv, sq, skv].map { .int32(Int32($0)) } + [.float32(scale)]
                + inputs.flatMap { $0.strides.map { .int64(Int64($0)) } } + [.int32(vectorLoads ? 1 : 0)]
                + CUDAAttentionMods.blockArguments(blocks) + mods.kernelArguments
        }

        let tensorMaps = CUDATensorMap.usable(on: device, for: inputs)
        let (keyValueKernel, queryKernel) = try Self.kernels(
            shape: shape, mask: mods.maskFunction, scoreMod: mods.scoreFunction,
            maxSharedMemory: device.maxSharedMemoryPerBlockOptIn, tensorMaps: tensorMaps)
        // The Hopper kernels read Q, K, V and dO through tensor maps first.
        func maps(_ kernel: any AttentionKernel) throws -> [KernelArgument] {
            guard kernel.readsTensorMaps else { return [] }
            return try [(query, kernel.queryBlock), (key, kernel.keyBlock), (value, kernel.keyBlock),
                        (outputGradient, kernel.queryBlock)].map { .tensorMap(try CUDATensorMap($0, boxRows: $1, device: device)) }
        }
        let keyBlocks = try mods.blockList(for: keyValueKernel, shape: shape, transposed: true, device: device)
        let keyValueLaunch = try KernelLaunch(
            // Heads along x, as in the forward: every head's busiest blocks start first.
            keyValueKernel, grid: (b * hkv, (skv + keyValueKernel.keyBlock - 1) / keyValueKernel.keyBlock),
            arguments: try maps(keyValueKernel) + common + [.pointer(keyGradient.address), .pointer(valueGradient.address)]
                + tail(keyBlocks),
            cache: cache, device: device)

        let queryBlocks = try mods.blockList(for: queryKernel, shape: shape, device: device)
        let queryLaunch = try KernelLaunch(
            queryKernel, grid: (b * hq, (sq + queryKernel.queryBlock - 1) / queryKernel.queryBlock),
            arguments: try maps(queryKernel) + common + [.pointer(queryGradient.address)] + tail(queryBlocks)
                + (mods.scoreFunction?.tableGradientDefinition == nil ? [] : [.buffer(tablePointers)]),
            cache: cache, device: device)

        return BackwardLaunch(
            delta: deltaLaunch, keyValue: keyValueLaunch, query: queryLaunch, side: try CUDAStream(device: device),
            forked: try CUDAEvent(device: device, timing: false), joined: try CUDAEvent(device: device, timing: false),
            queryGradient: queryGradient, keyGradient: keyGradient, valueGradient: valueGradient,
            tableGradients: zip(slots, tableGradients).compactMap { table, buffer in buffer.map { (table, $0) } },
            retained: [inputs, output, logSumExp, delta, keyBlocks as Any, queryBlocks as Any, tablePointers, mods])
    }

    /// Tensor cores for 16-bit inputs with head dims ``ForwardKernel`` takes (both kernels with `wgmma` and TMA
    /// where the device is a Hopper and TMA can read the inputs, `tensorMaps`), CUDA cores otherwise (the same
    /// parameters either way, after the tensor maps).
    /// - Throws: ``FlexAttentionError/unsupportedHeadDimension(_:supported:)`` when the CUDA-core kernels' tiles do
    ///   not fit the device's shared memory.
    static func kernels(
        shape: AttentionShape, mask: CUDAModFunction?, scoreMod: CUDAModFunction?, maxSharedMemory sharedMemory: Int,
        tensorMaps: Bool
    ) throws -> (keyValue: any AttentionKernel, query: any AttentionKernel) {
        let (d, dv, dtype) = (shape.headDim, shape.valueDim, shape.dtype)
        if dtype != .float32 && [d, dv].allSatisfy(ForwardKernel.supportedHeadDims.contains) {
            let hopperKeyValue = HopperKeyValueGradientKernel(
                dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod
            ).fitting(maxSharedMemory: sharedMemory)
            let hopperQuery = HopperQueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                .fitting(maxSharedMemory: sharedMemory)
            if tensorMaps && HopperKeyValueGradientKernel.supports(headDim: d, valueDim: dv)
                && max(hopperKeyValue.sharedMemoryBytes, hopperQuery.sharedMemoryBytes) <= sharedMemory {
                return (hopperKeyValue, hopperQuery)
            }
            return (
                KeyValueGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                    .fitting(maxSharedMemory: sharedMemory),
                QueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                    .fitting(maxSharedMemory: sharedMemory))
        }
        let keyValue = ScalarKeyValueGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
        let query = ScalarQueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
        guard max(keyValue.sharedMemoryBytes, query.sharedMemoryBytes) <= sharedMemory else {
            let largest = (1...max(d, dv)).last {
                ScalarBackwardTile(headDim: $0, valueDim: $0).sharedMemoryBytes <= sharedMemory
            } ?? 0
            throw FlexAttentionError.unsupportedHeadDimension(max(d, dv), supported: 1...max(1, largest))
        }
        return (keyValue, query)
    }

    private static func allocate(_ shape: [Int], _ dtype: DType, _ device: CUDADevice) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: DeviceBuffer(device: device, byteCount: max(1, shape.reduce(1, *)) * dtype.byteSize), dtype: dtype,
            shape: shape, strides: Tensor.contiguousStrides(shape))
    }
}

/// One backward pass ready to queue: its kernels and the gradients they write (contiguous, the inputs' dtype; table
/// gradients Float32 and zeroed once, so a repeated launch adds to them).
struct BackwardLaunch {
    let delta: KernelLaunch
    let keyValue: KernelLaunch
    let query: KernelLaunch
    /// The stream dQ runs on, beside dK/dV, between the two events.
    let side: CUDAStream
    let forked: CUDAEvent
    let joined: CUDAEvent
    let queryGradient: DeviceTensor
    let keyGradient: DeviceTensor
    let valueGradient: DeviceTensor
    let tableGradients: [(table: ModTable, buffer: DeviceBuffer)]
    /// Device buffers the arguments point at; the caller keeps the launch until the device is done.
    let retained: [Any]

    /// Queues Delta, then dK/dV on `stream` (the legacy default stream when nil) and dQ on a stream of its own: the
    /// two are independent, and running them side by side fills the SMs that one kernel's last, uneven wave (a
    /// causal mask's) leaves idle. Work queued on `stream` afterwards waits for both.
    func enqueue(on stream: CUDAStream? = nil) throws {
        try delta.enqueue(on: stream)
        try forked.record(on: stream)
        try side.wait(for: forked)
        try keyValue.enqueue(on: stream)
        try query.enqueue(on: side)
        try joined.record(on: side)
        try CUDAStream.wait(stream, for: joined)
    }
}
