import FlexAttention

/// What a prepared call costs the host, and what a model step captured as a CUDA graph costs the GPU, through the
/// public device API.
extension GPUTiming {
    /// Microseconds per call, medians of three runs of `calls` calls in batches of 100 with a synchronisation
    /// between batches: `host` is the time to queue them, `gpu` the time between events around each batch. Batches
    /// keep the launch queue from filling, which would throttle the host to the GPU's pace (`scripts/gpu_overhead.py`
    /// measures PyTorch the same way).
    struct Overhead {
        var host: Double
        var gpu: Double
    }

    /// The overhead of prepared forward (with `backward`, forward and backward) calls on a tiny problem, `B=1 H=1
    /// S=128 D=64` bf16, into outputs allocated once.
    static func overhead(device: CUDADevice, backward: Bool, calls: Int = 10_000) throws -> Overhead {
        let problem = try Problem(
            device: device, batch: 1, heads: 1, length: 128, headDim: 64, dtype: .bfloat16, options: .init(),
            backward: backward)
        let stream = try CUDAStream(device: device)
        let outputs = try problem.outputs(on: stream)
        for _ in 0..<100 { try problem.enqueue(outputs, on: stream) }
        let (start, end) = (try CUDAEvent(device: device), try CUDAEvent(device: device))
        let clock = ContinuousClock()
        let batch = 100
        var runs: [Overhead] = []
        for _ in 0..<3 {
            var host = Duration.zero
            var gpu = 0.0
            for _ in 0..<(calls / batch) {
                try stream.synchronize()
                try start.record(on: stream)
                let began = clock.now
                for _ in 0..<batch { try problem.enqueue(outputs, on: stream) }
                host += clock.now - began
                try end.record(on: stream)
                try stream.synchronize()
                gpu += Double(try end.milliseconds(since: start))
            }
            let seconds = Double(host.components.seconds) + Double(host.components.attoseconds) * 1e-18
            runs.append(Overhead(host: seconds * 1e6 / Double(calls), gpu: gpu * 1e3 / Double(calls)))
        }
        func median(_ metric: (Overhead) -> Double) -> Double { runs.map(metric).sorted()[1] }
        return Overhead(host: median(\.host), gpu: median(\.gpu))
    }

    /// One model step against single calls.
    struct ModelStep {
        /// Median milliseconds of one layer's forward and backward, queued as separate calls.
        var layer: Double
        /// Median milliseconds of the whole step replayed as one graph.
        var step: Double
        var layers: Int
        /// `step / (layers · layer)`.
        var ratio: Double { step / (Double(layers) * layer) }
    }

    /// `layers` layers of attention forward and backward on the same device-resident inputs, each layer with its
    /// own outputs, all sharing one plan (one block mask), captured once as a CUDA graph and replayed.
    static func modelStep(
        device: CUDADevice, layers: Int, batch: Int, heads: Int, length: Int, headDim: Int, options: AttentionOptions
    ) throws -> ModelStep {
        let problem = try Problem(
            device: device, batch: batch, heads: heads, length: length, headDim: headDim, dtype: .bfloat16,
            options: options, backward: true)
        let stream = try CUDAStream(device: device)
        let outputs = try (0..<layers).map { _ in try problem.outputs(on: stream) }
        let layer = try medianMilliseconds(on: stream, iterations: 20) { try problem.enqueue(outputs[0], on: stream) }
        let graph = try CUDAGraph.capture(on: stream) {
            for layerOutputs in outputs { try problem.enqueue(layerOutputs, on: stream) }
        }
        let step = try medianMilliseconds(on: stream, iterations: 10) { try graph.launch(on: stream) }
        return ModelStep(layer: layer, step: step, layers: layers)
    }
}
