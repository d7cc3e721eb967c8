import FlexAttention

/// `flexattn bench --device cuda --context-parallel N`: ring attention over N GPUs of this machine (one process, a
/// communicator per GPU) against one GPU's ``AttentionPlan`` on the same sequence, timed in the same run: B=1, Hq=32,
/// Hkv=8, D=128, bf16, causal or a sliding window, S ∈ {128k, 256k, 512k} (or `--sequence`). Reports milliseconds,
/// TFLOP/s per GPU (4·B·Hq·D per kept score; 3.5× that with the backward), speedup, efficiency (speedup / N) and the
/// bytes each GPU receives. `--longest` instead finds the longest causal sequence whose forward and backward run on
/// one GPU and on N (B=4, H=128, D=128, bf16; the ring in 64 head groups).
struct ContextParallelBenchmark {
    enum MaskChoice: CustomStringConvertible {
        case causal
        case window(Int)

        var options: AttentionOptions {
            switch self {
            case .causal: AttentionOptions(isCausal: true)
            case let .window(size): AttentionOptions(mask: .slidingWindow(size))
            }
        }

        /// Scores kept per (batch, head) of a sequence of `length`.
        func keptScores(_ length: Int) -> Double {
            switch self {
            case .causal: Double(length) * Double(length + 1) / 2
            case let .window(size):
                Double(min(size, length)) * Double(min(size, length) + 1) / 2 + Double(max(0, length - size)) * Double(size)
            }
        }

        var description: String {
            switch self {
            case .causal: "causal"
            case let .window(size): "sliding window \(size)"
            }
        }
    }

    var worldSizes: [Int]
    var sequences: [Int]
    var mask: MaskChoice
    var headGroups: Int
    var longest: Bool

    static let (batch, queryHeads, keyValueHeads, headDim) = (1, 32, 8, 128)

    func execute() throws {
        let available = try CUDADriver.deviceCount()
        guard let most = worldSizes.max(), most <= available, worldSizes.allSatisfy({ $0 >= 1 }) else {
            throw CommandLineError("--context-parallel \(worldSizes.map(String.init).joined(separator: ",")) needs that"
                                   + " many GPUs; this machine has \(available)")
        }
        // Every NCCL_* variable in effect, so that a table says how NCCL was set up.
        let environment = ProcessEnvironment.current.filter { $0.key.hasPrefix("NCCL_") }
            .map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        let devices = try (0..<most).map { try CUDADevice.open($0) }
        print("flexattn bench --context-parallel: \(most) × \(devices[0].name), bf16; \(environment.isEmpty ? "no NCCL_* set" : environment)")
        if longest { return try executeLongest(devices: devices) }
        print("B=\(Self.batch) Hq=\(Self.queryHeads) Hkv=\(Self.keyValueHeads) D=\(Self.headDim), \(mask); fwd+bwd credits 3.5× the forward's FLOPs")
        print("       S    GPUs  pass      ms   TFLOP/s/GPU  speedup  efficiency  received/GPU  host queue ms")
        for length in sequences {
            let shape = try AttentionShape(
                batch: Self.batch, queryHeads: Self.queryHeads, keyValueHeads: Self.keyValueHeads, queryLength: length,
                headDim: Self.headDim, dtype: .bfloat16)
            let flops = 4 * Double(Self.batch * Self.queryHeads * Self.headDim) * mask.keptScores(length)
            let one = try timeOneGPU(shape, device: devices[0])
            for (pass, ms) in [("fwd", one.forward), ("fwd+bwd", one.training)] {
                print(row(length, 1, pass, ms, flops * (pass == "fwd" ? 1 : 3.5), speedup: 1, received: nil))
            }
            for world in worldSizes {
                let ring = try timeRing(shape, devices: Array(devices.prefix(world)))
                for (pass, ms, base, bytes) in [("fwd", ring.forward, one.forward, ring.forwardBytes),
                                                ("fwd+bwd", ring.training, one.training, ring.trainingBytes)] {
                    print(row(length, world, pass, ms, flops * (pass == "fwd" ? 1 : 3.5), speedup: base.total / ms.total,
                              received: bytes))
                }
            }
        }
    }

    private func row(
        _ length: Int, _ world: Int, _ pass: String, _ ms: (total: Double, queued: Double), _ flops: Double,
        speedup: Double, received: Int?
    ) -> String {
        // `received` is nil for the one-GPU plan; a ring of one rank (`--context-parallel 1`) shows what splitting
        // the work into pairs costs without any communication.
        pad(length, 8) + pad(received == nil ? "1" : "ring \(world)", 8) + "  " + pass.padding(8)
            + pad(fixed(ms.total, 1), 8) + pad(fixed(flops / (ms.total * 1e-3) / 1e12 / Double(world), 1), 14)
            + pad(fixed(speedup, 2), 9) + pad(received == nil ? "" : fixed(100 * speedup / Double(world), 1) + "%", 12)
            + pad(received.map { fixed(Double($0) / 1e9, 2) + " GB" } ?? "", 14) + pad(fixed(ms.queued, 1), 15)
    }

    /// Median wall milliseconds of `body` over `iterations` runs after one warm-up, each run waited for on every
    /// stream (the ring's end is the last GPU's), and the median of the host's time to queue it.
    private func milliseconds(
        _ streams: [CUDAStream], iterations: Int, _ body: () throws -> Void
    ) throws -> (total: Double, queued: Double) {
        let clock = ContinuousClock()
        func ms(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) * 1e-15
        }
        var samples = [(total: Double, queued: Double)]()
        for run in 0...iterations {
            let start = clock.now
            try body()
            let queued = clock.now
            for stream in streams { try stream.synchronize() }
            if run > 0 { samples.append((ms(clock.now - start), ms(queued - start))) }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return (median(samples.map(\.total)), median(samples.map(\.queued)))
    }

    private func iterations(_ length: Int) -> Int { length >= 524_288 ? 2 : 3 }

    private typealias Timing = (total: Double, queued: Double)

    private func timeOneGPU(_ shape: AttentionShape, device: CUDADevice) throws -> (forward: Timing, training: Timing) {
        let stream = try CUDAStream(device: device)
        let plan = try AttentionPlan(shape: shape, options: mask.options, device: device)
        let (q, k, v, dO) = try (filled(shape.queryShape, device, stream, seed: 1), filled(shape.keyShape, device, stream, seed: 2),
                                 filled(shape.valueShape, device, stream, seed: 3), filled(shape.outputShape, device, stream, seed: 4))
        let forward = try milliseconds([stream], iterations: iterations(shape.queryLength)) {
            _ = try plan.forward(query: q, key: k, value: v, on: stream)
        }
        let training = try milliseconds([stream], iterations: iterations(shape.queryLength)) {
            let o = try plan.forward(query: q, key: k, value: v, on: stream)
            _ = try plan.backward(query: q, key: k, value: v, forward: o, outputGradient: dO, on: stream)
        }
        return (forward, training)
    }

    private func timeRing(
        _ shape: AttentionShape, devices: [CUDADevice]
    ) throws -> (forward: Timing, training: Timing, forwardBytes: Int, trainingBytes: Int) {
        let group = try ContextParallelGroup(devices: devices)
        let plan = try ContextParallelPlan(shape: shape, options: mask.options, group: group, headGroups: headGroups)
        let streams = try devices.map { try CUDAStream(device: $0) }
        let shard = plan.shardShape
        let inputs = try zip(devices, streams).enumerated().map { rank, pair in
            let (device, stream) = pair
            return ContextParallelInputs(
                query: try filled(shard.queryShape, device, stream, seed: 10 * rank + 1),
                key: try filled(shard.keyShape, device, stream, seed: 10 * rank + 2),
                value: try filled(shard.valueShape, device, stream, seed: 10 * rank + 3))
        }
        let outputGradients = try zip(devices, streams).enumerated().map { rank, pair in
            try filled(shard.outputShape, pair.0, pair.1, seed: 10 * rank + 4)
        }
        let forward = try milliseconds(streams, iterations: iterations(shape.queryLength)) {
            _ = try plan.forward(inputs, on: streams)
        }
        let training = try milliseconds(streams, iterations: iterations(shape.queryLength)) {
            let outputs = try plan.forward(inputs, on: streams)
            _ = try plan.backward(inputs, forward: outputs, outputGradients: outputGradients, on: streams)
        }
        try group.check()
        // Keys and values arrive once per pass; the backward's key/value gradients come back in Float32.
        let rowBytes = shape.keyValueHeads * (shape.headDim + shape.valueDim) * 2 * shape.batch
        let rows = (0..<group.worldSize).map { rank in
            (0..<group.worldSize).map { plan.schedule.rowsReceived(rank: rank, step: $0) }.reduce(0, +)
        }.max() ?? 0
        return (forward, training, rows * rowBytes, rows * rowBytes * 4)
    }

    /// `--longest`: the longest causal sequence (B=4, H=128, D=128, bf16, a multiple of 1024) whose forward and
    /// backward run on one GPU (searched by halving), then on all the GPUs given (from 3× that, up in steps of a
    /// quarter until one fails; a failed ring leaves work queued, so the search ends there).
    private func executeLongest(devices: [CUDADevice]) throws {
        let (batch, heads, headDim) = (4, 128, 128)
        func shape(_ length: Int) throws -> AttentionShape {
            try AttentionShape(batch: batch, queryHeads: heads, keyValueHeads: heads, queryLength: length,
                               headDim: headDim, dtype: .bfloat16)
        }
        let unit = 1024
        func runsOnOne(_ length: Int) -> Bool {
            do {
                let stream = try CUDAStream(device: devices[0])
                let s = try shape(length)
                let plan = try AttentionPlan(shape: s, options: .init(isCausal: true), device: devices[0])
                let (q, k, v, dO) = try (filled(s.queryShape, devices[0], stream, seed: 1),
                                         filled(s.keyShape, devices[0], stream, seed: 2),
                                         filled(s.valueShape, devices[0], stream, seed: 3),
                                         filled(s.outputShape, devices[0], stream, seed: 4))
                let o = try plan.forward(query: q, key: k, value: v, on: stream)
                _ = try plan.backward(query: q, key: k, value: v, forward: o, outputGradient: dO, on: stream)
                try stream.synchronize()
                return true
            } catch {
                return false
            }
        }
        var (good, bad) = (0, 1 << 20)
        while bad - good > unit {
            let middle = (good + bad) / 2 / unit * unit
            if runsOnOne(middle) { good = middle } else { bad = middle }
            try devices[0].synchronize()
        }
        print("longest causal fwd+bwd, B=\(batch) H=\(heads) D=\(headDim): 1 GPU \(good)")
        let world = devices.count
        let group = try ContextParallelGroup(devices: devices)
        let step = 2 * world * 128
        var longest = 0
        var factor = 3.0
        while true {
            let length = Int(Double(good) * factor) / step * step
            do {
                let plan = try ContextParallelPlan(
                    shape: try shape(length), options: .init(isCausal: true), group: group, headGroups: heads / 2)
                let streams = try devices.map { try CUDAStream(device: $0) }
                let s = plan.shardShape
                let inputs = try zip(devices, streams).map { device, stream in
                    ContextParallelInputs(query: try filled(s.queryShape, device, stream, seed: 1),
                                          key: try filled(s.keyShape, device, stream, seed: 2),
                                          value: try filled(s.valueShape, device, stream, seed: 3))
                }
                let dO = try zip(devices, streams).map { try filled(s.outputShape, $0, $1, seed: 4) }
                let clock = ContinuousClock()
                let elapsed = try clock.measure {
                    let o = try plan.forward(inputs, on: streams)
                    _ = try plan.backward(inputs, forward: o, outputGradients: dO, on: streams)
                    for stream in streams { try stream.synchronize() }
                }
                try group.check()
                longest = length
                print("  \(world) GPUs: \(length) runs (\(fixed(Double(length) / Double(good), 2))× one GPU), \(elapsed)")
            } catch {
                print("  \(world) GPUs: \(length) does not run: \(error)")
                break
            }
            factor += 0.25
        }
        print("longest causal fwd+bwd: 1 GPU \(good), \(world) GPUs \(longest): \(fixed(Double(longest) / Double(good), 2))×")
        group.abort()
    }
}

/// A new contiguous bf16 tensor of `shape` on `device`, filled with values in [−1, 1): a random block copied from the
/// host (seeded by `seed`), then doubled device to device until it covers the tensor.
func filled(_ shape: [Int], _ device: CUDADevice, _ stream: CUDAStream, seed: Int) throws -> DeviceTensor {
    let tensor = try DeviceTensor(device: device, dtype: .bfloat16, shape: shape, stream: stream)
    let total = tensor.buffer.byteCount
    var generator = SplitMix64(seed: UInt64(seed))
    let block = min(total, 1 << 24)
    let values = try Tensor((0..<block / 2).map { _ in Float.random(in: -1..<1, using: &generator) },
                            shape: [block / 2], dtype: .bfloat16)
    try stream.synchronize()  // the stream-ordered allocation exists before a synchronous copy into it
    try tensor.buffer.copy(from: UnsafeRawBufferPointer(start: values.storage.baseAddress, count: block))
    var filled = block
    while filled < total {
        let count = min(filled, total - filled)
        try tensor.buffer.copy(from: tensor.buffer, sourceOffset: 0, toOffset: filled, count: count, stream: stream)
        filled += count
    }
    try stream.synchronize()
    return tensor
}
