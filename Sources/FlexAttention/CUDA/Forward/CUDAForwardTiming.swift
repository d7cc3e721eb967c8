/// Times the CUDA forward kernel alone, or forward and backward (inputs, block lists and mod arguments prepared
/// beforehand), for `flexattn bench --device cuda` and `flexattn cuda-bench`.
package enum CUDAForwardTiming {
    /// What one measurement found.
    package struct Measurement: Sendable {
        /// Median milliseconds per forward pass (or forward and backward).
        package var milliseconds: Double
        /// `4 · B · H · D` times the scores counted (all, half under causal, or as given) over the median time.
        package var teraflops: Double
        /// The kernels timed, in launch order.
        package var kernels: [KernelResources]
    }

    /// A kernel's name and per-thread resources.
    package struct KernelResources: Sendable {
        package var name: String
        package var registers: Int
        /// Bytes of local memory per thread: non-zero means registers spilled.
        package var localMemory: Int
    }

    /// Random BHSD inputs of `[batch, heads, length, headDim]`; `iterations` timed runs after one warm-up.
    /// `keptScores` is the number of scores per (batch, head) the FLOP count credits: `S²`, halved under causal,
    /// when `nil` (give the kept count for other masks, so that sparsity is not free credit). With `backward`, each
    /// run is a forward and a backward pass, credited 3.5 times the forward's FLOPs (the backward's five matrix
    /// products against the forward's two, as FlashAttention counts).
    package static func measure(
        device: CUDADevice, cache: KernelCache, batch: Int, heads: Int, length: Int, headDim: Int, dtype: DType,
        options: AttentionOptions, keptScores: Double? = nil, backward: Bool = false, iterations: Int = 20
    ) throws -> Measurement {
        let dims = [batch, heads, length, headDim]
        let values = (0..<dims.reduce(1, *)).map { Float(($0 * 7919) % 2001) / 1000 - 1 }
        let host = try Tensor(values, shape: dims, dtype: dtype)
        let tensor = try DeviceTensor(copying: host, to: device)
        let shape = try AttentionShape(query: host, key: host, value: host)
        let launch = try CUDAForward(device: device, cache: cache).prepare(
            shape: shape, query: tensor, key: tensor, value: tensor, options: options)
        let stream = try CUDAStream(device: device)
        let (start, end) = (try CUDAEvent(device: device), try CUDAEvent(device: device))
        try launch.enqueue(on: stream)
        let backwardLaunch = try backward ? CUDABackward(device: device, cache: cache).prepare(
            shape: shape, query: tensor, key: tensor, value: tensor, output: launch.output, logSumExp: launch.logSumExp,
            outputGradient: tensor, options: options) : nil
        try backwardLaunch?.enqueue(on: stream)
        var times: [Double] = []
        for _ in 0..<iterations {
            try start.record(on: stream)
            try launch.enqueue(on: stream)
            try backwardLaunch?.enqueue(on: stream)
            try end.record(on: stream)
            try stream.synchronize()
            times.append(Double(try end.milliseconds(since: start)))
        }
        withExtendedLifetime((launch, backwardLaunch)) {}
        let median = times.sorted()[times.count / 2]
        let scores = keptScores ?? Double(length) * Double(length) * (options.isCausal ? 0.5 : 1)
        let flops = 4 * Double(batch * heads * headDim) * scores * (backward ? 3.5 : 1)
        let functions = [launch.kernel.function] + (backwardLaunch.map { [$0.delta, $0.keyValue, $0.query].map(\.function) } ?? [])
        return Measurement(
            milliseconds: median, teraflops: flops / (median * 1e-3) / 1e12,
            kernels: try functions.map {
                KernelResources(name: $0.name, registers: try $0.registerCount(), localMemory: try $0.localMemory())
            })
    }
}
