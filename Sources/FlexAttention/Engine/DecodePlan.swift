/// Decoding attention on the GPU, prepared once and called every step: 1 to 16 (or more) new query tokens per
/// sequence against each sequence's keys and values in a ``DeviceKVCache``, contiguous or paged.
///
/// Query `i` of sequence `b` is at position `L[b] − Sq + i` and sees the cached positions `0..<L[b]` (the new tokens
/// are appended to the cache first); mods see those absolute positions as `q` and `kv`, and `q_len = kv_len = L[b]`,
/// so a causal mask (`q >= kv`), a sliding window or a document mask work as in prefill. Sinks join every row's
/// denominator and are included in O and the log-sum-exp.
///
/// A plan fixes the query heads and length, the cache's layout (batch, KV heads, dims, dtype, capacity, page size),
/// the options and the device. Making it emits the mods, uploads their constants, tables and the sinks, loads the
/// kernels, and fixes the split plan (how many parts each sequence's keys are cut into so that even one sequence
/// fills the GPU; from the shape and the device alone, so results are the same bits on every call). Each call only
/// checks its tensors and queues one kernel (two when the keys are split: the parts are merged by a second kernel
/// in a fixed order) on the caller's stream: it never synchronises and allocates only stream-ordered scratch.
///
/// ```swift
/// let cache = try DeviceKVCache(batch: 8, kvHeads: 8, headDim: 128, pageCount: 8192, pageSize: 16,
///                               maxPagesPerSequence: 2048, dtype: .bfloat16, device: gpu)
/// let plan = try DecodePlan(queryHeads: 32, queryLength: 1, cache: cache,
///                           options: AttentionOptions(mask: .slidingWindow(4096)))
/// for _ in 0..<steps {
///     try cache.append(keys: k, values: v, on: stream)              // [8, 8, 1, 128]
///     let step = try plan.decode(query: q, cache: cache, on: stream)  // O [8, 32, 1, 128], LSE [8, 32, 1]
/// }
/// ```
///
/// The query heads of each KV head are computed together, so K and V are read once per KV head (grouped-query and
/// multi-query attention). 16-bit caches with head dims that are multiples of 16 up to 256 run on tensor cores;
/// Float32 caches and other head dims on CUDA cores. Tokens past a sequence's length are never read and may hold
/// anything; key blocks the mask removes entirely are neither read nor computed. Unlike ``Attention``, the plan does
/// not scan its inputs for NaN and ±∞: the cached tokens below each length and the queries are expected finite.
///
/// A plan may be used from any thread and on several streams at once; the order of calls (and of the cache's
/// appends) on different streams is the caller's to arrange.
public final class DecodePlan: Sendable {
    /// The device every tensor, cache and stream of a call must be on.
    public let device: CUDADevice
    /// Query heads (`Hq`), a multiple of the cache's KV heads.
    public let queryHeads: Int
    /// New queries per sequence (`Sq`).
    public let queryLength: Int
    /// Scale, mask, score mod and sinks, as the plan was made.
    public let options: AttentionOptions
    /// How many parts each sequence's keys are split into (1: no combine step). Fixed by the shape and the device.
    public let splits: Int

    let layout: DeviceKVCacheLayout
    let scale: Float
    let kernel: LoadedKernel<DecodeOperands>
    /// Merges the splits; nil with one split.
    let combine: LoadedKernel<DecodeCombineOperands>?
    let maskArguments: CUDAModArguments?
    let scoreArguments: CUDAModArguments?
    /// Float32 `[Hq]`; nil without sinks.
    let sinkBuffer: DeviceBuffer?

    /// Prepares decoding `queryLength` new queries of `queryHeads` heads per sequence against caches laid out as
    /// `cache` (its tensors and lengths may differ from call to call; its sizes, dtype and paging may not).
    /// - Parameters:
    ///   - queryHeads: `Hq`, a multiple of the cache's KV heads.
    ///   - queryLength: `Sq`, new queries per sequence, at least 1.
    ///   - cache: a cache of the layout every call's cache must have.
    ///   - options: scale, causality, mask, score mod and sinks. A block mask is refused: the mask is evaluated per
    ///     sequence, as its length grows.
    /// - Throws: ``FlexAttentionError`` or ``ModError`` for options or sizes that do not fit (heads that do not
    ///   divide, a mod indexing a table outside its bounds anywhere in the cache's capacity, bad sinks or scale, a
    ///   head dim no kernel fits); ``CUDAError`` when compilation or the device fails.
    public convenience init(queryHeads: Int, queryLength: Int, cache: DeviceKVCache, options: AttentionOptions = .init())
        throws
    {
        let layout = cache.layout
        // The plan is made for every length up to the capacity: its problem is the full cache's.
        let full = try KVCacheIndex(
            capacity: layout.capacity, lengths: [Int](repeating: layout.capacity, count: layout.batch), pageTable: nil)
        let problem = try DecodeProblem(
            query: [layout.batch, queryHeads, queryLength, layout.headDim], cache: full, kvHeads: layout.kvHeads,
            headDim: layout.headDim, valueDim: layout.valueDim, options: options)
        try self.init(problem, options: options, layout: layout, device: cache.device,
                      cache: AttentionPlan.processCache.get())
    }

    init(_ problem: DecodeProblem, options: AttentionOptions, layout: DeviceKVCacheLayout, device: CUDADevice,
         cache: KernelCache) throws {
        (self.device, self.layout, self.options) = (device, layout, options)
        (queryHeads, queryLength, scale) = (problem.queryHeads, problem.queryLength, problem.scale)
        let mask = problem.mask.map { CUDAModFunction(mask: $0) }
        let scoreMod = problem.scoreMod.map { CUDAModFunction(scoreMod: $0, includesGradients: false) }
        maskArguments = try problem.mask.map { try CUDAModArguments($0.expression.arguments, device: device) }
        scoreArguments = try problem.scoreMod.map { try CUDAModArguments($0.expression.arguments, device: device) }
        sinkBuffer = try problem.sinks.map { try DeviceBuffer(device: device, copying: $0) }

        let chosen = try Self.kernel(problem, layout: layout, mask: mask, scoreMod: scoreMod, device: device)
        let function = try cache.function(for: chosen, on: device)
        try function.setMaxDynamicSharedMemory(chosen.sharedMemoryBytes)
        let rows = problem.groupSize * problem.queryLength
        let ctasPerSplit = layout.batch * layout.kvHeads * ((rows + chosen.rowsPerTile - 1) / chosen.rowsPerTile)
        let resident = device.multiprocessorCount
            * (try function.maxActiveBlocksPerMultiprocessor(threads: chosen.threads, sharedMemory: chosen.sharedMemoryBytes))
        splits = DecodeSplitPlanner.splits(
            ctasPerSplit: ctasPerSplit, capacity: layout.capacity, keyBlock: chosen.keyBlock, residentCTAs: resident)
        kernel = LoadedKernel(
            function: function, signature: chosen.signature, grid: (ctasPerSplit, splits, 1), block: chosen.threads,
            sharedMemory: chosen.sharedMemoryBytes)
        if splits > 1 {
            let merge = DecodeCombineKernel(dtype: layout.dtype, valueDim: layout.valueDim)
            let rowCount = layout.batch * problem.queryHeads * problem.queryLength
            combine = LoadedKernel(
                function: try cache.function(for: merge, on: device), signature: merge.signature,
                grid: (rowCount, 1, 1),
                block: DecodeCombineKernel.threads)
        } else {
            combine = nil
        }
    }

    /// The kernel for the problem: tensor cores for 16-bit caches with head dims ``DecodeMMAKernel`` takes, CUDA
    /// cores otherwise.
    /// - Throws: ``FlexAttentionError/unsupportedHeadDimension(_:supported:)`` when the CUDA-core kernel's tiles do
    ///   not fit the device's shared memory.
    static func kernel(
        _ problem: DecodeProblem, layout: DeviceKVCacheLayout, mask: CUDAModFunction?, scoreMod: CUDAModFunction?,
        device: CUDADevice
    ) throws -> any DecodeAttentionKernel {
        let (d, dv) = (layout.headDim, layout.valueDim)
        let rows = problem.groupSize * problem.queryLength
        let paged = layout.pageSize != nil
        if layout.dtype != .float32 && [d, dv].allSatisfy(DecodeMMAKernel.supportedHeadDims.contains) {
            return DecodeMMAKernel(
                dtype: layout.dtype, headDim: d, valueDim: dv, rows: rows, isPaged: paged, mask: mask, scoreMod: scoreMod
            ).fitting(maxSharedMemoryPerMultiprocessor: device.maxSharedMemoryPerMultiprocessor)
        }
        let kernel = DecodeScalarKernel(
            dtype: layout.dtype, headDim: d, valueDim: dv, rows: rows, isPaged: paged, mask: mask, scoreMod: scoreMod)
        guard kernel.sharedMemoryBytes <= device.maxSharedMemoryPerBlockOptIn else {
            throw FlexAttentionError.unsupportedHeadDimension(
                max(d, dv), supported: 1...kernel.largestHeadDim(sharedMemory: device.maxSharedMemoryPerBlockOptIn))
        }
        return kernel
    }

    /// `[B, Hq, Sq, D]`: the query every call takes.
    public var queryShape: [Int] { [layout.batch, queryHeads, queryLength, layout.headDim] }
    /// `[B, Hq, Sq, Dv]`: O's shape.
    public var outputShape: [Int] { [layout.batch, queryHeads, queryLength, layout.valueDim] }
    /// `[B, Hq, Sq]`: the log-sum-exp's shape.
    public var logSumExpShape: [Int] { [layout.batch, queryHeads, queryLength] }

    /// The decode kernel, then the combine kernel when there is one (for tooling that reports their resources).
    package var kernelFunctions: [CUDAFunction] { [kernel.function] + (combine.map { [$0.function] } ?? []) }
}
