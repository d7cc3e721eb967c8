/// A plan's backward pass for one way of reading the inputs (through TMA tensor maps or not): Delta
/// (`Σ dO · O` per row), dK/dV (one CTA per key block and key/value head, walking the transposed block list over
/// the group's query heads) and dQ (one CTA per query block, walking the forward block list), loaded, with both
/// block lists uploaded. On a Hopper the dK/dV kernel computes dQ too, adding it to Float32 sums that a small kernel
/// rounds (``QueryGradientSums``). Every sum runs in a fixed order, so dQ, dK and dV are deterministic, unless
/// ``AttentionOptions/deterministicGradients`` is false: then a Hopper adds dQ in any order above D = 128. Float
/// tables' gradients are summed in fixed point (``TableGradientSum``), deterministic either way.
struct BackwardProgram: Sendable {
    let delta: LoadedKernel<DeltaOperands>
    let keyValue: LoadedKernel<GradientOperands>
    /// The dQ kernel, or where the dK/dV kernel sums dQ, the kernel that rounds the sums.
    let query: LoadedKernel<GradientOperands>?
    let queryFinish: LoadedKernel<QueryGradientFinishOperands>?
    let keyBlocks: CUDABlockList?
    let queryBlocks: CUDABlockList?
    let readsTensorMaps: Bool
    /// Whether the dK/dV kernel reads ``DeltaKernel``'s per-block LSE and Delta, which the caller then allocates.
    let readsBlockRows: Bool
    /// Whether the dK/dV kernel adds dQ to its sums in any order (``HopperBackwardKernel/ordersQueryGradient``
    /// false), so the sums must start zeroed.
    let addsQueryGradientInAnyOrder: Bool
    /// Heads per band of the launch order where the dK/dV kernel sums dQ (``HopperBackwardKernel/ctaCoordinates``).
    let bandHeads: Int
    /// Key blocks of the dK/dV kernel: without a block list, how many add to each query block's dQ sums.
    let keyBlockCount: Int
    /// Query and key rows per block of the dK/dV kernel, then of the dQ kernel where one runs (the tensor maps' boxes).
    let boxes: (keyValue: (query: Int, key: Int), query: (query: Int, key: Int)?)

    /// The program for `shape`; `deterministic` false lets a Hopper add dQ in any order.
    init(shape: AttentionShape, mods: PlanMods, tensorMaps: Bool, deterministic: Bool, cache: KernelCache, device: CUDADevice) throws {
        let (b, hq, sq) = (shape.batch, shape.queryHeads, shape.queryLength)
        let (keyValueKernel, queryKernel) = try Self.kernels(
            shape: shape, mask: mods.maskFunction, scoreMod: mods.backwardScoreFunction,
            maxSharedMemory: device.maxSharedMemoryPerBlockOptIn, tensorMaps: tensorMaps, deterministic: deterministic)
        readsBlockRows = keyValueKernel.readsBlockRows
        let deltaKernel = DeltaKernel(dtype: shape.dtype)
        let deltaRows = DeltaKernel.rowCount(batch: b, heads: hq, queryLength: sq, blockRows: readsBlockRows)
        delta = LoadedKernel(
            function: try cache.function(for: deltaKernel, on: device), signature: DeltaKernel.signature(shape.dtype),
            grid: ((deltaRows + DeltaKernel.rowBlock - 1) / DeltaKernel.rowBlock, 1, 1),
            block: DeltaKernel.threads)
        keyBlocks = try mods.blockList(for: keyValueKernel, shape: shape, transposed: true, device: device)
        queryBlocks = try queryKernel.flatMap { try mods.blockList(for: $0, shape: shape, device: device) }
        // Heads along x, as in the forward: every head's busiest blocks start first. A kernel that sums dQ numbers
        // its CTAs itself, in bands of heads whose CTAs run together (HopperBackwardKernel.ctaCoordinates).
        let heads = b * shape.keyValueHeads, keyBlockCount = (shape.keyLength + keyValueKernel.keyBlock - 1) / keyValueKernel.keyBlock
        keyValue = try LoadedKernel(
            keyValueKernel, signature: keyValueKernel.signature,
            grid: keyValueKernel.sumsQueryGradient ? (keyBlockCount, heads) : (heads, keyBlockCount), cache: cache, device: device)
        query = try queryKernel.map {
            try LoadedKernel($0, signature: $0.signature, grid: (b * hq, (sq + $0.queryBlock - 1) / $0.queryBlock),
                             cache: cache, device: device)
        }
        let finish = QueryGradientFinishKernel(dtype: shape.dtype)
        // Overlapping the dK/dV kernel's last wave, each block rounded once its turn counter is complete.
        queryFinish = !keyValueKernel.sumsQueryGradient ? nil : LoadedKernel(
            function: try cache.function(for: finish, on: device), signature: QueryGradientFinishKernel.signature(shape.dtype),
            grid: (QueryGradientFinishKernel.blocks(batch: b, queryHeads: hq, queryLength: sq), 1, 1), block: QueryGradientFinishKernel.threads,
            overlapsPrevious: true)
        self.keyBlockCount = keyBlockCount
        readsTensorMaps = keyValueKernel.readsTensorMaps
        addsQueryGradientInAnyOrder = (keyValueKernel as? any HopperBackwardKernel).map { !$0.ordersQueryGradient } ?? false
        bandHeads = (keyValueKernel as? any HopperBackwardKernel).map {
            type(of: $0).headBand(for: shape, multiprocessors: device.multiprocessorCount, l2Bytes: device.l2CacheSize)
        } ?? 1
        boxes = ((keyValueKernel.queryBlock, keyValueKernel.keyBlock), queryKernel.map { ($0.queryBlock, $0.keyBlock) })
    }

    /// Tensor cores for 16-bit inputs with head dims ``MMAForwardKernel`` takes (both kernels with `wgmma` and TMA
    /// where `tensorMaps` says TMA can read the inputs on a Hopper; above D = 128 adding dQ in any order unless
    /// `deterministic`), CUDA cores otherwise (deterministic either way).
    /// - Throws: ``FlexAttentionError/unsupportedHeadDimension(_:supported:)`` when the CUDA-core kernels' tiles do
    ///   not fit the device's shared memory.
    static func kernels(
        shape: AttentionShape, mask: CUDAModFunction?, scoreMod: CUDAModFunction?, maxSharedMemory sharedMemory: Int,
        tensorMaps: Bool, deterministic: Bool = true
    ) throws -> (keyValue: any GradientAttentionKernel, query: (any GradientAttentionKernel)?) {
        let (d, dv, dtype) = (shape.headDim, shape.valueDim, shape.dtype)
        if dtype != .float32 && [d, dv].allSatisfy(MMAForwardKernel.supportedHeadDims.contains) {
            // Its grid's y is the batch times the key/value heads, which CUDA bounds at 65535.
            if tensorMaps && shape.batch * shape.keyValueHeads <= 65535,
               let hopper = hopperKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod,
                                         ordered: deterministic, maxSharedMemory: sharedMemory),
               hopper.sharedMemoryBytes <= sharedMemory {
                return (hopper, nil)
            }
            return (
                MMAKeyValueGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                    .fitting(maxSharedMemory: sharedMemory),
                MMAQueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
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

    /// The one-pass Hopper backward for these head dims, with as many stages as fit; nil where neither takes them.
    private static func hopperKernel(
        dtype: DType, headDim d: Int, valueDim dv: Int, mask: CUDAModFunction?, scoreMod: CUDAModFunction?,
        ordered: Bool, maxSharedMemory: Int
    ) -> (any HopperBackwardKernel)? {
        if HopperGradientKernel.supports(headDim: d, valueDim: dv) {
            return HopperGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod)
                .fitting(maxSharedMemory: maxSharedMemory)
        }
        if HopperWideGradientKernel.supports(headDim: d, valueDim: dv) {
            return HopperWideGradientKernel(
                dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod, ordersQueryGradient: ordered
            ).fitting(maxSharedMemory: maxSharedMemory)
        }
        return nil
    }

    /// Where the dK/dV kernel adds dQ for `shape` (``QueryGradientSums``): the bytes to allocate, where the turn
    /// counters begin, and where the bytes that must start at zero begin (the counters, and with
    /// ``addsQueryGradientInAnyOrder`` the sums too); nil where a dQ kernel runs.
    func queryGradientSums(_ shape: AttentionShape) -> (bytes: Int, turnsOffset: Int, zeroedFrom: Int)? {
        guard queryFinish != nil else { return nil }
        let (b, h, s, d) = (shape.batch, shape.queryHeads, shape.queryLength, shape.headDim)
        let turnsOffset = QueryGradientSums.turnsOffset(batch: b, heads: h, queryLength: s, headDim: d)
        return (QueryGradientSums.byteCount(batch: b, heads: h, queryLength: s, headDim: d), turnsOffset,
                addsQueryGradientInAnyOrder ? 0 : turnsOffset)
    }

    /// The sums in `buffer` (``queryGradientSums(_:)``'s bytes, its turn counters from `turnsOffset`) as the kernels
    /// read them, with the transposed block list's turns.
    func queryGradientSumsOperand(in buffer: DeviceBuffer, turnsOffset: Int) -> QueryGradientSumsOperand {
        QueryGradientSumsOperand(
            sums: buffer.address, turns: buffer.address + UInt64(turnsOffset), blockTurns: keyBlocks?.turns?.address ?? 0,
            bandHeads: bandHeads)
    }

    /// The dQ finish's operands (``QueryGradientFinishKernel``) for the sums `sums` describes.
    func queryFinishOperands(_ shape: AttentionShape, sums: QueryGradientSumsOperand, queryGradient: DeviceTensor, scale: Float)
        -> QueryGradientFinishOperands {
        QueryGradientFinishOperands(
            sums: sums.sums, turns: sums.turns, adders: keyBlocks?.adders?.address ?? 0,
            queryGradient: queryGradient.address, queryLength: shape.queryLength, headDim: shape.headDim, scale: scale,
            queryHeads: shape.queryHeads, keyBlocks: keyBlockCount, maskBatchStride: keyBlocks?.batchStride ?? 0, maskHeadStride: keyBlocks?.headStride ?? 0)
    }

    /// The operands of the two gradient kernels for checked tensors (`gradients` are dK, dV and dQ; `sums`, where the
    /// dK/dV kernel adds dQ), with the tensor maps they read; made before anything is queued, since encoding a tensor
    /// map can fail.
    func operands(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, outputGradient: DeviceTensor,
        logSumExp: DeviceTensor, delta: DeviceBuffer, blockRows: DeviceBuffer?,
        gradients: (key: DeviceTensor, value: DeviceTensor, query: DeviceTensor),
        sums: QueryGradientSumsOperand?,
        tableGradients: UInt64, sizes: AttentionSizes, mods: PlanMods, tensorMaps: TensorMapCache
    ) throws -> (keyValue: GradientOperands, query: GradientOperands?) {
        let inputs = [query, key, value, outputGradient]
        let vectorLoads = inputs.allSatisfy(\.rowsAreVectorLoadable)
        func maps(_ box: (query: Int, key: Int)) throws -> [CUDATensorMap] {
            guard readsTensorMaps else { return [] }
            return try zip(inputs, [box.query, box.key, box.key, box.query]).map { try tensorMaps.map($0, boxRows: $1) }
        }
        func operands(_ box: (query: Int, key: Int), _ outputs: [DeviceTensor], _ blocks: CUDABlockList?) throws
            -> GradientOperands {
            GradientOperands(
                tensorMaps: try maps(box), query: TensorOperand(query), key: TensorOperand(key),
                value: TensorOperand(value), outputGradient: TensorOperand(outputGradient),
                logSumExp: logSumExp.address, delta: delta.address, blockRows: blockRows?.address ?? 0,
                gradients: outputs.map(\.address),
                shared: mods.shared(sizes: sizes, vectorLoads: vectorLoads, blocks: blocks),
                tableGradients: tableGradients)
        }
        var keyValue = try operands(boxes.keyValue, [gradients.key, gradients.value], keyBlocks)
        if let sums { keyValue.queryGradientSums = sums }
        return (keyValue, try boxes.query.map { try operands($0, [gradients.query], queryBlocks) })
    }
}
