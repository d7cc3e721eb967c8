/// Attention's backward pass on a CUDA device: the entry point behind `Attention(device: .cuda(n)).backward`.
///
/// Three kernels: Delta (`Σ dO · O` per row), dK/dV (one CTA per key block and key/value head, walking the
/// transposed block list over the group's query heads) and dQ (one CTA per query block, walking the forward
/// block list). Both gradient kernels sum in a fixed order, so every gradient is deterministic; Float tables' gradients
/// are summed with atomics.
struct CUDABackward {
    let device: CUDADevice
    let cache: KernelCache

    /// Copies host tensors to the device, runs, and copies the gradients back in the inputs' dtype.
    func run(
        query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput, outputGradient: Tensor,
        options: AttentionOptions
    ) throws -> AttentionGradients {
        let shape = try AttentionShape(query: query, key: key, value: value)
        guard shape.dtype != .float32,
              [shape.headDim, shape.valueDim].allSatisfy(ForwardKernel.supportedHeadDims.contains) else {
            throw FlexAttentionError.invalidArgument(
                "the CUDA backward pass takes Float16 or BFloat16 inputs with head dims 16, 32, …, 256")
        }
        // The kernels read O and dO in the inputs' dtype and the LSE as contiguous Float32.
        func matching(_ tensor: Tensor, _ dtype: DType) throws -> Tensor {
            tensor.dtype == dtype ? tensor : try Tensor(tensor.floats(), shape: tensor.shape, dtype: dtype)
        }
        let upload = { (tensor: Tensor) in try DeviceTensor(copying: tensor, to: device) }
        let mods = try CUDAAttentionMods(options, device: device)
        let scale = try shape.resolvedScale(options.scale)
        let (q, k, v) = (try upload(query), try upload(key), try upload(value))
        let (output, gradient) = (try upload(matching(forward.output, shape.dtype)), try upload(matching(outputGradient, shape.dtype)))
        let logSumExp = try upload(Tensor(forward.logSumExp.floats(), shape: forward.logSumExp.shape))
        let (b, hq, hkv, sq, skv) = (shape.batch, shape.queryHeads, shape.keyValueHeads, shape.queryLength, shape.keyLength)

        let delta = try DeviceBuffer(device: device, byteCount: max(1, b * hq * sq) * 4)
        let deltaKernel = DeltaKernel(dtype: shape.dtype)
        try cache.function(deltaKernel.name, source: deltaKernel.source, on: device).launch(
            grid: (max(1, (b * hq * sq + DeltaKernel.rowsPerBlock - 1) / DeltaKernel.rowsPerBlock), 1, 1),
            block: (DeltaKernel.threads, 1, 1),
            arguments: [.pointer(output.address), .pointer(gradient.address), .buffer(delta)]
                + [hq, sq, shape.valueDim].map { .int32(Int32($0)) }
                + (output.strides + gradient.strides).map { .int64(Int64($0)) } + [.int64(Int64(b * hq * sq))])

        let keyGradient = try Self.allocate([b, hkv, skv, shape.headDim], shape.dtype, device)
        let valueGradient = try Self.allocate([b, hkv, skv, shape.valueDim], shape.dtype, device)
        let queryGradient = try Self.allocate([b, hq, sq, shape.headDim], shape.dtype, device)
        let floatTables = mods.scoreFunction?.arguments.tables.map { $0.elementType == .float ? $0 : nil } ?? []
        let tableGradients = try floatTables.map { table in
            try table.map { table in
                let buffer = try DeviceBuffer(device: device, byteCount: table.shape.reduce(1, *) * 4)
                try buffer.fill(0)
                return buffer
            }
        }
        let tablePointers = try DeviceBuffer(device: device, copying: tableGradients.map { $0?.address ?? 0 } + [0])

        let vectorLoads = [q, k, v, gradient].allSatisfy(CUDAForward.rowsAreVectorLoadable)
        let common: [KernelArgument] = [q, k, v, gradient, logSumExp].map { .pointer($0.address) } + [.buffer(delta)]
        func tail(_ blocks: CUDABlockList?) -> [KernelArgument] {
            [hq, hkv, sq, skv].map { .int32(Int32($0)) } + [.float32(scale)]
                + [q, k, v, gradient].flatMap { $0.strides.map { .int64(Int64($0)) } } + [.int32(vectorLoads ? 1 : 0)]
                + CUDAAttentionMods.blockArguments(blocks) + mods.kernelArguments
        }

        let keyValueKernel = KeyValueGradientKernel(
            dtype: shape.dtype, headDim: shape.headDim, valueDim: shape.valueDim, mask: mods.maskFunction,
            scoreMod: mods.scoreFunction
        ).fitting(maxSharedMemory: device.maxSharedMemoryPerBlockOptIn)
        let keyBlocks = try mods.blockList(for: keyValueKernel, shape: shape, transposed: true, device: device)
        try launch(keyValueKernel, grid: ((skv + keyValueKernel.keyBlock - 1) / keyValueKernel.keyBlock, b * hkv),
                   arguments: common + [.pointer(keyGradient.address), .pointer(valueGradient.address)] + tail(keyBlocks))

        let queryKernel = QueryGradientKernel(
            dtype: shape.dtype, headDim: shape.headDim, valueDim: shape.valueDim, mask: mods.maskFunction,
            scoreMod: mods.scoreFunction
        ).fitting(maxSharedMemory: device.maxSharedMemoryPerBlockOptIn)
        let queryBlocks = try mods.blockList(for: queryKernel, shape: shape, device: device)
        try launch(queryKernel, grid: ((sq + queryKernel.queryBlock - 1) / queryKernel.queryBlock, b * hq),
                   arguments: common + [.pointer(queryGradient.address)] + tail(queryBlocks)
                       + (queryKernel.computesTableGradients ? [.buffer(tablePointers)] : []))
        try device.synchronize()

        var tables: [String: Tensor] = [:]
        for case let (table?, buffer?) in zip(floatTables, tableGradients) {
            var values = [Float](repeating: 0, count: table.shape.reduce(1, *))
            try values.withUnsafeMutableBytes { try buffer.copy(to: $0) }
            tables[table.name] = try Tensor(values, shape: table.shape)
        }
        withExtendedLifetime((q, k, v, output, gradient, logSumExp, keyBlocks, queryBlocks, tablePointers, mods)) {}
        return AttentionGradients(
            query: try queryGradient.copyToHost(), key: try keyGradient.copyToHost(),
            value: try valueGradient.copyToHost(), tableGradients: tables)
    }

    private func launch(_ kernel: some AttentionKernel, grid: (Int, Int), arguments: [KernelArgument]) throws {
        guard grid.0 > 0, grid.1 > 0 else { return }
        let function = try cache.function(kernel.name, source: kernel.source, on: device)
        try function.setMaxDynamicSharedMemory(kernel.sharedMemoryBytes)
        try function.launch(
            grid: (grid.0, grid.1, 1), block: (kernel.threads, 1, 1), sharedMemory: kernel.sharedMemoryBytes,
            arguments: arguments)
    }

    private static func allocate(_ shape: [Int], _ dtype: DType, _ device: CUDADevice) throws -> DeviceTensor {
        try DeviceTensor(
            buffer: DeviceBuffer(device: device, byteCount: max(1, shape.reduce(1, *)) * dtype.byteSize), dtype: dtype,
            shape: shape, strides: Tensor.contiguousStrides(shape))
    }
}
