/// A plan's forward pass for one way of reading the inputs (through TMA tensor maps or not): the kernel chosen for
/// the shape, loaded, and the mask's block list at its block sizes, uploaded.
///
/// 16-bit inputs with head dims that are multiples of 16 up to 256 run on tensor cores (``HopperForwardKernel`` on
/// a Hopper when TMA can read the inputs, ``MMAForwardKernel`` otherwise), the rest on CUDA cores in Float32
/// (``ScalarForwardKernel``).
struct ForwardProgram: Sendable {
    let kernel: LoadedKernel<ForwardOperands>
    let blocks: CUDABlockList?
    let readsTensorMaps: Bool
    let queryBlock: Int
    let keyBlock: Int
    /// Whether the kernel takes a zeroed tile counter (``ForwardAttentionKernel/schedulesTiles``).
    let schedulesTiles: Bool
    /// Heads per band of the tile order, for the Hopper kernel.
    let bandHeads: Int

    init(shape: AttentionShape, scale: Float, mods: PlanMods, tensorMaps: Bool, cache: KernelCache, device: CUDADevice)
        throws {
        let chosen = try Self.kernel(
            shape: shape, mask: mods.maskFunction, scoreMod: mods.forwardScoreFunction,
            maxSharedMemory: device.maxSharedMemoryPerBlockOptIn, tensorMaps: tensorMaps, scaleIsPositive: scale > 0)
        blocks = try mods.blockList(for: chosen, shape: shape, device: device)
        kernel = try LoadedKernel(
            chosen, signature: chosen.signature, grid: chosen.grid(shape, multiprocessors: device.multiprocessorCount),
            cache: cache, device: device)
        (readsTensorMaps, queryBlock, keyBlock, schedulesTiles) =
            (chosen.readsTensorMaps, chosen.queryBlock, chosen.keyBlock, chosen.schedulesTiles)
        bandHeads = (chosen as? HopperForwardKernel)?.headBand(
            for: shape, multiprocessors: device.multiprocessorCount, l2Bytes: device.l2CacheSize) ?? 1
    }

    /// The kernel for `shape`: tensor cores for 16-bit inputs with head dims ``MMAForwardKernel`` takes (with `wgmma`
    /// and TMA where `tensorMaps` says TMA can read the inputs on a Hopper), CUDA cores otherwise.
    /// - Throws: ``FlexAttentionError/unsupportedHeadDimension(_:supported:)`` when the CUDA-core kernel's tiles do
    ///   not fit the device's shared memory.
    static func kernel(
        shape: AttentionShape, mask: CUDAModFunction?, scoreMod: CUDAModFunction?, maxSharedMemory sharedMemory: Int,
        tensorMaps: Bool, scaleIsPositive: Bool = true
    ) throws -> any ForwardAttentionKernel {
        let (d, dv) = (shape.headDim, shape.valueDim)
        let tensorCores = shape.dtype != .float32 && [d, dv].allSatisfy(MMAForwardKernel.supportedHeadDims.contains)
        if tensorCores && tensorMaps {
            let kernel = HopperForwardKernel(
                dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod,
                scaleIsPositive: scaleIsPositive
            ).fitting(maxSharedMemory: sharedMemory).scheduled(for: shape)
            if kernel.sharedMemoryBytes <= sharedMemory && kernel.stages >= 2 { return kernel }
        }
        if tensorCores {
            return MMAForwardKernel(dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                .fitting(maxSharedMemory: sharedMemory)
        }
        let kernel = ScalarForwardKernel(dtype: shape.dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
        guard kernel.sharedMemoryBytes <= sharedMemory else {
            throw FlexAttentionError.unsupportedHeadDimension(
                max(d, dv), supported: 1...ScalarForwardKernel.largestHeadDim(sharedMemory: sharedMemory))
        }
        return kernel
    }

    /// Queues the forward pass of checked tensors on `stream`.
    func enqueue(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, output: DeviceTensor, logSumExp: DeviceTensor,
        sizes: AttentionSizes, mods: PlanMods, tensorMaps: TensorMapCache, on stream: CUDAStream
    ) throws {
        let maps = try !readsTensorMaps ? [] : [(query, queryBlock), (key, keyBlock), (value, keyBlock)].map {
            try tensorMaps.map($0, boxRows: $1)
        }
        // Scratch, zeroed and freed on `stream` around the kernel (a counter per call, so calls on other streams
        // never share one).
        let tileCounter = try !schedulesTiles ? nil : DeviceBuffer(device: stream.device, byteCount: 4, stream: stream)
        try tileCounter?.fill(0, stream: stream)
        let operands = ForwardOperands(
            tensorMaps: maps, query: TensorOperand(query), key: TensorOperand(key), value: TensorOperand(value),
            output: TensorOperand(output), logSumExp: logSumExp.address, tileCounter: tileCounter?.address ?? 0,
            bandHeads: bandHeads,
            shared: mods.shared(
                sizes: sizes, vectorLoads: [query, key, value].allSatisfy(\.rowsAreVectorLoadable), blocks: blocks))
        try kernel.enqueue(operands, on: stream)
    }
}

extension DeviceTensor {
    /// Whether rows can be copied 16 bytes at a time: contiguous last dim, 8-element-aligned strides and base.
    var rowsAreVectorLoadable: Bool {
        strides[3] == 1 && strides.dropLast().allSatisfy { $0 % 8 == 0 } && address % 16 == 0
    }
}
