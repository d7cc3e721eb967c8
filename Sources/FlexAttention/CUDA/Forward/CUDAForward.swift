/// Attention's forward pass on a CUDA device: the entry point behind `Attention(device: .cuda(n)).forward`.
///
/// Inputs of any dtype and head dims (D and Dv may differ, up to what the CUDA-core kernel fits in shared memory),
/// any strides, GQA by head index mapping: 16-bit inputs with head dims that are multiples of 16 up to 256 run on
/// tensor cores (``ForwardKernel``), the rest on CUDA cores in Float32 (``ScalarForwardKernel``). Causal and the
/// mask are one mask (`causal && mask`) whose block list skips empty blocks; the score mod and mask are emitted into
/// the kernel with their constants and tables as arguments, so new values reuse the compiled kernel.
struct CUDAForward {
    let device: CUDADevice
    let cache: KernelCache

    /// Copies host tensors to the device, runs, and copies `O` and the LSE back.
    func run(query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions) throws -> AttentionOutput {
        let shape = try AttentionShape(query: query, key: key, value: value)
        let result = try run(
            shape: shape, query: DeviceTensor(copying: query, to: device), key: DeviceTensor(copying: key, to: device),
            value: DeviceTensor(copying: value, to: device), options: options)
        try device.synchronize()
        return AttentionOutput(output: try result.output.copyToHost(), logSumExp: try result.logSumExp.copyToHost())
    }

    /// Runs on device tensors already checked to form `shape`; returns `O` (`[B, Hq, Sq, Dv]`, contiguous, the
    /// inputs' dtype) and the Float32 LSE (`[B, Hq, Sq]`).
    func run(
        shape: AttentionShape, query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, options: AttentionOptions
    ) throws -> (output: DeviceTensor, logSumExp: DeviceTensor) {
        let launch = try prepare(shape: shape, query: query, key: key, value: value, options: options)
        try launch.enqueue()
        try device.synchronize()
        return (launch.output, launch.logSumExp)
    }

    /// Compiles (or finds) the kernel, allocates the outputs and uploads the block list and mod arguments.
    func prepare(
        shape: AttentionShape, query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, options: AttentionOptions
    ) throws -> ForwardLaunch {
        let scale = try shape.resolvedScale(options.scale)
        let mods = try CUDAAttentionMods(options, includesGradients: false, device: device)
        let kernel = try Self.kernel(
            shape: shape, mask: mods.maskFunction, scoreMod: mods.scoreFunction,
            maxSharedMemory: device.maxSharedMemoryPerBlockOptIn,
            tensorMaps: CUDATensorMap.usable(on: device, for: [query, key, value]))

        let (b, hq, sq) = (shape.batch, shape.queryHeads, shape.queryLength)
        let outputShape = [b, hq, sq, shape.valueDim]
        let output = try DeviceTensor(
            buffer: DeviceBuffer(device: device, byteCount: outputShape.reduce(1, *) * shape.dtype.byteSize),
            dtype: shape.dtype, shape: outputShape, strides: Tensor.contiguousStrides(outputShape))
        let logSumExp = try DeviceTensor(
            buffer: DeviceBuffer(device: device, byteCount: b * hq * sq * 4), dtype: .float32, shape: [b, hq, sq],
            strides: Tensor.contiguousStrides([b, hq, sq]))

        let blocks = try mods.blockList(for: kernel, shape: shape, device: device)
        let vectorLoads = [query, key, value].allSatisfy(Self.rowsAreVectorLoadable)
        var arguments: [KernelArgument] = []
        if kernel.readsTensorMaps {
            arguments = try [(query, kernel.queryBlock), (key, kernel.keyBlock), (value, kernel.keyBlock)].map {
                .tensorMap(try CUDATensorMap($0, boxRows: $1, device: device))
            }
        }
        arguments += [query, key, value, output].map { .pointer($0.address) }
        arguments += [.pointer(logSumExp.address)]
        arguments += [hq, shape.keyValueHeads, sq, shape.keyLength].map { .int32(Int32($0)) } + [.float32(scale)]
        arguments += [query, key, value, output].flatMap { $0.strides.map { .int64(Int64($0)) } }
        arguments += [.int32(vectorLoads ? 1 : 0)]
        arguments += CUDAAttentionMods.blockArguments(blocks) + mods.kernelArguments
        // Heads along x: CTAs start in x order, so every head's longest query blocks (the last, under causal) go
        // first and the short ones fill the tail.
        let launch = try KernelLaunch(
            kernel, grid: (b * hq, (sq + kernel.queryBlock - 1) / kernel.queryBlock), arguments: arguments,
            cache: cache, device: device)
        return ForwardLaunch(
            kernel: launch, output: output, logSumExp: logSumExp,
            retained: [query.buffer, key.buffer, value.buffer, blocks as Any, mods])
    }

    /// Tensor cores for 16-bit inputs with head dims ``ForwardKernel`` takes (with `wgmma` and TMA where the device is
    /// a Hopper and TMA can read the inputs, `tensorMaps`), CUDA cores otherwise; all read the same arguments, the
    /// Hopper kernel after three tensor maps.
    /// - Throws: ``FlexAttentionError/unsupportedHeadDimension(_:supported:)`` when the CUDA-core kernel's tiles do
    ///   not fit the device's shared memory.
    static func kernel(
        shape: AttentionShape, mask: CUDAModFunction?, scoreMod: CUDAModFunction?, maxSharedMemory sharedMemory: Int,
        tensorMaps: Bool
    ) throws -> any AttentionKernel {
        let (d, dv) = (shape.headDim, shape.valueDim)
        let tensorCores = shape.dtype != .float32 && [d, dv].allSatisfy(ForwardKernel.supportedHeadDims.contains)
        if tensorCores && tensorMaps {
            let kernel = HopperForwardKernel(dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                .fitting(maxSharedMemory: sharedMemory)
            if kernel.sharedMemoryBytes <= sharedMemory { return kernel }
        }
        if tensorCores {
            return ForwardKernel(dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                .fitting(maxSharedMemory: sharedMemory)
        }
        let kernel = ScalarForwardKernel(dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
        guard kernel.sharedMemoryBytes <= sharedMemory else {
            throw FlexAttentionError.unsupportedHeadDimension(
                max(d, dv), supported: 1...ScalarForwardKernel.largestHeadDim(sharedMemory: sharedMemory))
        }
        return kernel
    }

    /// Whether rows can be copied 16 bytes at a time: contiguous last dim, 8-element-aligned strides and base.
    static func rowsAreVectorLoadable(_ tensor: DeviceTensor) -> Bool {
        tensor.strides[3] == 1 && tensor.strides.dropLast().allSatisfy { $0 % 8 == 0 } && tensor.address % 16 == 0
    }
}

/// One forward pass ready to queue, any number of times (benchmarks repeat it): its kernel and the outputs it
/// writes.
struct ForwardLaunch {
    let kernel: KernelLaunch
    let output: DeviceTensor
    let logSumExp: DeviceTensor
    /// Device buffers the arguments point at; the caller keeps the launch until the device is done.
    let retained: [Any]

    func enqueue(on stream: CUDAStream? = nil) throws {
        try kernel.enqueue(on: stream)
    }
}
