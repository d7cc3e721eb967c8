import FlexAttention

/// Timings of the public device API (``AttentionPlan`` on device tensors and a stream) for `flexattn bench --device
/// cuda` and `flexattn cuda-bench`: kernel time, host overhead per call, and a model step captured as a CUDA graph.
enum GPUTiming {
    /// What one kernel-time measurement found.
    struct Measurement {
        /// Median milliseconds per forward pass (or forward and backward).
        var milliseconds: Double
        /// `4 · B · H · D` times the scores counted over the median time (3.5 times that with the backward).
        var teraflops: Double
        /// The kernels timed, in launch order: name, registers per thread, bytes of local memory per thread.
        var kernels: [(name: String, registers: Int, localMemory: Int)]
    }

    /// One problem's device-resident inputs and outputs, and a plan for it.
    struct Problem {
        let plan: AttentionPlan
        let query: DeviceTensor
        let key: DeviceTensor
        let value: DeviceTensor
        let outputGradient: DeviceTensor

        /// Deterministic BHSD inputs of `[batch, heads, length, headDim]` (K and V share Q's values).
        init(device: CUDADevice, batch: Int, heads: Int, length: Int, headDim: Int, dtype: DType,
             options: AttentionOptions, backward: Bool) throws {
            let dims = [batch, heads, length, headDim]
            let values = (0..<dims.reduce(1, *)).map { Float(($0 * 7919) % 2001) / 1000 - 1 }
            let host = try Tensor(values, shape: dims, dtype: dtype)
            query = try DeviceTensor(copying: host, to: device)
            (key, value, outputGradient) = (query, query, query)
            plan = try AttentionPlan(
                shape: AttentionShape(query: host, key: host, value: host), options: options, device: device,
                includesBackward: backward)
        }

        /// New output tensors for one forward (and backward) pass.
        func outputs(on stream: CUDAStream) throws -> (DeviceAttentionOutput, DeviceAttentionGradients?) {
            let forward = try plan.forward(query: query, key: key, value: value, on: stream)
            let gradients = try plan.includesBackward
                ? plan.backward(query: query, key: key, value: value, forward: forward, outputGradient: outputGradient,
                                on: stream) : nil
            return (forward, gradients)
        }

        /// Queues a forward (and backward) pass into existing outputs: what a graph captures.
        func enqueue(_ outputs: (DeviceAttentionOutput, DeviceAttentionGradients?), on stream: CUDAStream) throws {
            try plan.forward(query: query, key: key, value: value, into: outputs.0, on: stream)
            if let gradients = outputs.1 {
                try plan.backward(
                    query: query, key: key, value: value, forward: outputs.0, outputGradient: outputGradient,
                    into: gradients, on: stream)
            }
        }
    }

    /// Median GPU milliseconds of `body` over `iterations` runs after one warm-up, timed by an event pair per run
    /// on `stream`. The runs are queued back to back and waited for once, so each run's events bracket its work
    /// alone: the host queues the next run while the GPU executes this one, and its time to queue never falls
    /// inside a window (as it would if every run started on an idle stream).
    static func medianMilliseconds(on stream: CUDAStream, iterations: Int, _ body: () throws -> Void) throws -> Double {
        try body()
        let events = try (0...iterations).map { _ in try CUDAEvent(device: stream.device) }
        try events[0].record(on: stream)
        for event in events.dropFirst() {
            try body()
            try event.record(on: stream)
        }
        try stream.synchronize()
        let times = try zip(events, events.dropFirst()).map { start, end in Double(try end.milliseconds(since: start)) }
        return times.sorted()[times.count / 2]
    }

    /// Times a forward (with `backward`, a forward and a backward) pass through the plan, into outputs allocated once.
    /// `keptScores` is the number of scores per (batch, head) the FLOP count credits: `S²`, halved under causal, when
    /// `nil` (give the kept count for other masks, so that sparsity is not free credit).
    static func measure(
        device: CUDADevice, batch: Int, heads: Int, length: Int, headDim: Int, dtype: DType,
        options: AttentionOptions, keptScores: Double? = nil, backward: Bool = false, iterations: Int = 20
    ) throws -> Measurement {
        let problem = try Problem(
            device: device, batch: batch, heads: heads, length: length, headDim: headDim, dtype: dtype,
            options: options, backward: backward)
        let stream = try CUDAStream(device: device)
        let outputs = try problem.outputs(on: stream)
        let median = try medianMilliseconds(on: stream, iterations: iterations) { try problem.enqueue(outputs, on: stream) }
        let scores = keptScores ?? Double(length) * Double(length) * (options.isCausal ? 0.5 : 1)
        let flops = 4 * Double(batch * heads * headDim) * scores * (backward ? 3.5 : 1)
        return Measurement(
            milliseconds: median, teraflops: flops / (median * 1e-3) / 1e12,
            kernels: try problem.plan.kernelFunctions(tensorMaps: true).map {
                ($0.name, try $0.registerCount(), try $0.localMemory())
            })
    }
}
