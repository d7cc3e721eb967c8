import FlexAttention

/// `flexattn bench --decode --device cuda`: one decoding step (Sq = 1) through the public device API (a
/// ``DecodePlan`` over a ``DeviceKVCache``) on bf16, Hq = 32, Hkv = 8, D = 128, every sequence holding the whole
/// context: B ∈ {1, 8, 64} × context ∈ {1k, 8k, 32k, 128k} (or the `--sequence` values) × a contiguous cache and
/// paged caches of 16 and 64 tokens per page (pages in a shuffled order), and at B = 8, 32k a sliding window of 4096
/// and soft-capping. Rows whose cache does not fit the device are skipped, and say so.
///
/// Each row is timed by CUDA events around single decode calls queued back to back, each after a read of 512 MiB
/// that evicts the cache from L2 (outside the events; a read rather than a memset, whose dirty lines would be written
/// back during the timed call); the median of 30 is reported. GB/s counts the K and V bytes the
/// step must read (for the window only the window's tokens) over that time; `scripts/gpu_decode_anchors.py` times
/// PyTorch the same way on the same rows.
struct GPUDecodeBenchmark {
    let ordinal: Int
    /// The contexts to time.
    var contexts = [1024, 8192, 32768, 131_072]

    static let (queryHeads, kvHeads, headDim) = (32, 8, 128)
    /// The H100 SXM's HBM3 bandwidth by its datasheet, the "% of peak" column's reference.
    static let peakGBps = 3350.0

    struct Row {
        var batch: Int
        var context: Int
        /// Tokens per page; nil for a contiguous cache.
        var pageSize: Int?
        var label = ""
        var options = AttentionOptions()
        /// Tokens each sequence's step must read: the context, or a window's size.
        var tokensRead: Int

        var layout: String { pageSize.map { "paged \($0)" } ?? "contiguous" }
        var bytesRead: Double { Double(batch * GPUDecodeBenchmark.kvHeads * tokensRead * 2 * GPUDecodeBenchmark.headDim * 2) }
    }

    var rows: [Row] {
        var rows: [Row] = []
        for batch in [1, 8, 64] {
            for context in contexts {
                for pageSize in [nil, 16, 64] as [Int?] {
                    rows.append(Row(batch: batch, context: context, pageSize: pageSize, tokensRead: context))
                }
            }
        }
        let context = 32768
        rows.append(Row(batch: 8, context: context, label: "window 4096", options: .init(mask: .slidingWindow(4096)),
                        tokensRead: 4096))
        rows.append(Row(batch: 8, context: context, label: "soft-cap 30", options: .init(scoreMod: .softCap(30)),
                        tokensRead: context))
        return rows
    }

    func execute() throws {
        let device = try CUDADevice.open(ordinal)
        let fill = try BenchKernels(device: device)
        let stream = try CUDAStream(device: device)
        let evict = try fill.tensor([256 << 20])
        print("flexattn bench --decode: \(device.name), \(device.multiprocessorCount) SMs, bf16, Hq=32 Hkv=8 D=128 Sq=1;"
              + " GB/s of K+V read, % of \(Int(Self.peakGBps)) GB/s")
        print("   B  context  cache        mods            µs      GB/s   % peak  splits  kernel (regs, local bytes)")
        for row in rows {
            let prefix = pad(row.batch, 4) + pad(row.context, 9) + "  " + row.layout.padding(11) + "  "
                + (row.label.isEmpty ? "-" : row.label).padding(14)
            let needed = Int(row.bytesRead * Double(row.context) / Double(row.tokensRead)) + (1 << 30)
            guard needed < (try device.memoryInfo().free) else {
                print(prefix + "  skipped: the cache needs \(needed >> 30) GiB, more than the device has free")
                continue
            }
            let timed = try measure(row, device: device, fill: fill, stream: stream, evict: evict)
            let gbps = row.bytesRead / (timed.microseconds * 1e-6) / 1e9
            print(prefix + pad(fixed(timed.microseconds, 1), 9) + pad(fixed(gbps, 0), 10)
                  + pad(fixed(100 * gbps / Self.peakGBps, 1), 9) + pad(timed.splits, 8) + "  " + timed.kernel)
        }
    }

    private func measure(_ row: Row, device: CUDADevice, fill: BenchKernels, stream: CUDAStream,
                         evict: DeviceTensor) throws -> (microseconds: Double, splits: Int, kernel: String) {
        let lengths = [Int](repeating: row.context, count: row.batch)
        let cache: DeviceKVCache
        if let pageSize = row.pageSize {
            let pages = row.context / pageSize
            // Each sequence's pages spread over the pool in a fixed shuffled order, as a long-running server's are.
            var order = Array(0..<row.batch * pages)
            var generator = BenchGenerator(seed: 7)
            order.shuffle(using: &generator)
            let table = try PageTable(entries: order.map { Int32($0) }, batch: row.batch, maxPagesPerSequence: pages,
                                      pageCount: row.batch * pages, pageSize: pageSize)
            let pool = [row.batch * pages, pageSize, Self.kvHeads, Self.headDim]
            cache = try DeviceKVCache(
                keyPages: fill.tensor(pool), valuePages: fill.tensor(pool), pageTable: table, lengths: lengths)
        } else {
            let shape = [row.batch, Self.kvHeads, row.context, Self.headDim]
            cache = try DeviceKVCache(keys: fill.tensor(shape), values: fill.tensor(shape), lengths: lengths)
        }
        let plan = try DecodePlan(queryHeads: Self.queryHeads, queryLength: 1, cache: cache, options: row.options)
        let query = try fill.tensor(plan.queryShape)
        let output = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: .bfloat16, shape: plan.outputShape),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: plan.logSumExpShape))
        try plan.decode(query: query, cache: cache, into: output, on: stream)  // warm-up
        let iterations = 30
        let events = try (0..<2 * iterations).map { _ in try CUDAEvent(device: device) }
        for i in 0..<iterations {
            try fill.read(evict, on: stream)
            try events[2 * i].record(on: stream)
            try plan.decode(query: query, cache: cache, into: output, on: stream)
            try events[2 * i + 1].record(on: stream)
        }
        try stream.synchronize()
        let times = try (0..<iterations).map { Double(try events[2 * $0 + 1].milliseconds(since: events[2 * $0])) }
        let kernel = try plan.kernelFunctions.map {
            "\($0.name.split(separator: "_").prefix(3).joined(separator: "_")) (\(try $0.registerCount()), \(try $0.localMemory()))"
        }.joined(separator: " + ")
        return (1000 * times.sorted()[iterations / 2], plan.splits, kernel)
    }
}

/// The benchmark's own device work: bf16 tensors filled with uniform values in [−1, 1) from a hash of the element
/// index (random enough that nothing runs faster than real data, and quick for caches of tens of GiB), and a read of
/// a whole tensor (which leaves L2 holding its clean lines).
final class BenchKernels {
    struct Fill: GeneratedKernel {
        var name: String { "fa_bench_random_fill_bf16" }
        var source: String {
            """
            extern "C" __global__ void fa_bench_random_fill_bf16(unsigned short* data, long long count, unsigned seed) {
                for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
                     i += (long long)gridDim.x * blockDim.x) {
                    unsigned x = (unsigned)i * 2654435761u ^ (unsigned)(i >> 32) ^ seed;
                    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
                    const float value = (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
                    data[i] = (unsigned short)(__float_as_uint(value) >> 16);
                }
            }
            """
        }
    }

    struct Read: GeneratedKernel {
        var name: String { "fa_bench_read" }
        var source: String {
            """
            struct __align__(16) fa_bench_u4 { unsigned x, y, z, w; };
            extern "C" __global__ void fa_bench_read(const fa_bench_u4* data, long long count, unsigned* sink) {
                unsigned x = 0;
                for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
                     i += (long long)gridDim.x * blockDim.x) {
                    const fa_bench_u4 v = data[i];
                    x ^= v.x ^ v.y ^ v.z ^ v.w;
                }
                if (x == 0x9e3779b9u) *sink = x;  // keeps the loads; almost never taken
            }
            """
        }
    }

    let device: CUDADevice
    let fill: CUDAFunction
    let read: CUDAFunction
    private let sink: DeviceBuffer
    private var seed: UInt32 = 0

    init(device: CUDADevice) throws {
        self.device = device
        let cache = KernelCache(compiler: try NVRTC())
        fill = try cache.function(for: Fill(), on: device)
        read = try cache.function(for: Read(), on: device)
        sink = try DeviceBuffer(device: device, byteCount: 4)
    }

    /// A new contiguous bf16 tensor of `shape`, filled (synchronously) with a fresh seed.
    func tensor(_ shape: [Int]) throws -> DeviceTensor {
        let tensor = try DeviceTensor(device: device, dtype: .bfloat16, shape: shape)
        seed &+= 0x9E37_79B9
        let count = shape.reduce(1, *)
        try fill.launch(
            grid: (min((count + 255) / 256, 1 << 16), 1, 1), block: (256, 1, 1),
            arguments: [.pointer(tensor.address), .int64(Int64(count)), .uint32(seed)])
        try device.synchronize()
        return tensor
    }

    /// Queues a read of every byte of `tensor` (contiguous, a multiple of 16 bytes) on `stream`.
    func read(_ tensor: DeviceTensor, on stream: CUDAStream) throws {
        try read.launch(
            grid: (2 * device.multiprocessorCount, 1, 1), block: (1024, 1, 1), stream: stream,
            arguments: [.pointer(tensor.address), .int64(Int64(tensor.buffer.byteCount / 16)), .pointer(sink.address)])
    }
}

/// xorshift64, for the page order.
struct BenchGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
