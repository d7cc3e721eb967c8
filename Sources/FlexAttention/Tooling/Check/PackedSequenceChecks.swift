/// Packed sequences on the GPU against the CPU's packed attention: `Attention(device: .cuda(n))` (every sequence
/// queued on one stream, or one by one when an input is not finite) and ``PackedAttentionPlan`` on memory the pool
/// hands back filled with NaN, forward and backward. The cases cover causal alignment per sequence, a mask reading
/// `b`, a Float table indexed by `b` (gradients summed over sequences), sinks, sequences without queries or keys,
/// and bf16 and Float32; tolerances are the backward checks', doubled for tables.
extension CUDAConformance {
    /// Sizes of a packed case: (queries, keys) per sequence, heads (Hq, Hkv) and head dims (D, Dv).
    struct PackedCase {
        var label: String
        var dtype: DType
        var lengths: [(Int, Int)]
        var heads: (query: Int, keyValue: Int)
        var dims: (head: Int, value: Int)
        var options = AttentionOptions()
    }

    func packedSequenceChecks() -> [Check] {
        let lengths = [(1, 70), (37, 20), (70, 91), (0, 13), (130, 130), (9, 0)]
        var cases = [
            PackedCase(label: "bf16 D=80 GQA 6:2 causal bottom-right, odd and empty sequences", dtype: .bfloat16,
                       lengths: lengths, heads: (6, 2), dims: (80, 80),
                       options: .init(isCausal: true, causalAlignment: .bottomRight)),
            PackedCase(label: "fp16 D=64 MQA 4:1 causal, sinks", dtype: .float16, lengths: lengths, heads: (4, 1),
                       dims: (64, 64), options: .init(isCausal: true, scoreMod: .softCap(20), sinks: [0.5, -1, 2, -.infinity])),
        ]
        if let windows = try? IntTable(name: "window", values: [5, 40, 3, 100, 17, 9], shape: [6]),
           let slopes = try? FloatTable(name: "seq_slope", values: (0..<12).map { Float($0 % 5) * 0.02 - 0.04 }, shape: [6, 2]) {
            let options = AttentionOptions(
                isCausal: true, mask: MaskMod { b, _, q, kv in q - kv < windows[b] },
                scoreMod: ScoreMod { score, b, h, q, kv in score + slopes[b, h % 2] * float(kv - q) })
            cases += [
                PackedCase(label: "bf16 D=128 GQA 4:2, window per sequence (b), slope table per sequence and head",
                           dtype: .bfloat16, lengths: lengths, heads: (4, 2), dims: (128, 128), options: options),
                PackedCase(label: "fp32 D=64 window per sequence (b), slope table per sequence and head (CUDA cores)",
                           dtype: .float32, lengths: lengths, heads: (4, 2), dims: (64, 64), options: options),
            ]
        }
        return cases.map { testCase in ("packed sequences: \(testCase.label)", { try self.packed(testCase, &$0) }) }
            + [("packed sequences: a NaN key stays in its sequence", packedNonFinite),
               ("packed sequences: new lengths and sequence indices compile nothing", packedNoRecompilation)]
    }

    /// The case's sequences and random Q, K, V and dO.
    private func packedInputs(_ testCase: PackedCase, _ random: inout SplitMix64) throws -> (PackedSequences, [Tensor]) {
        let queryOffsets = testCase.lengths.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.0) }
        let keyOffsets = testCase.lengths.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.1) }
        let (q, k) = (queryOffsets[queryOffsets.count - 1], keyOffsets[keyOffsets.count - 1])
        let (h, d) = (testCase.heads, testCase.dims)
        let tensors = try [[q, h.query, d.head], [k, h.keyValue, d.head], [k, h.keyValue, d.value], [q, h.query, d.value]]
            .map { shape in
                let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &random) }
                return try Tensor(values, shape: shape, dtype: testCase.dtype)
            }
        return (try PackedSequences(queryOffsets: queryOffsets, keyOffsets: keyOffsets), tensors)
    }

    private func packed(_ testCase: PackedCase, _ random: inout SplitMix64) throws -> String? {
        let (sequences, host) = try packedInputs(testCase, &random)
        let options = testCase.options
        let cpu = Attention(device: .cpu)
        let want = try cpu.forward(
            query: host[0], key: host[1], value: host[2], sequences: sequences, options: options, outputDType: .float32)
        let wantGradients = try cpu.backward(
            query: host[0], key: host[1], value: host[2], sequences: sequences, forward: want, outputGradient: host[3],
            gradientDType: .float32)
        let tolerance: Float = switch testCase.dtype {
        case .float32: 1e-4
        case .float16: 5e-3
        case .bfloat16: 2e-2
        }

        // The host API; its backward from the CPU's forward, as the backward checks do.
        let gpu = Attention(device: .cuda(device.ordinal))
        let got = try gpu.forward(query: host[0], key: host[1], value: host[2], sequences: sequences, options: options)
        let gotGradients = try gpu.backward(
            query: host[0], key: host[1], value: host[2], sequences: sequences, forward: want, outputGradient: host[3])
        if let failure = comparePacked(
            [("O", got.output, want.output), ("LSE", got.logSumExp, want.logSumExp)], tolerance: tolerance)
            ?? comparePacked(gotGradients, wantGradients, tolerance: tolerance) {
            return "Attention: \(failure)"
        }
        if let sinks = wantGradients.sinkGradient, let failure = compare(
            "∂/∂sink", gotGradients.sinkGradient?.floats() ?? [], sinks.floats(), tolerance: 2 * tolerance) {
            return "Attention: \(failure)"
        }
        guard options.sinks == nil else { return nil }  // the plan takes no sinks

        // The device API, on pool memory filled with NaN first.
        let problem = try PackedProblem(query: host[0], key: host[1], value: host[2], sequences: sequences, options: options)
        let plan = try PackedAttentionPlan(problem, device: device, includesBackward: true, cache: cache)
        let stream = try CUDAStream(device: device)
        let tensors = try host.map { try DeviceTensor(copying: $0, to: device) }
        try poisonPool(on: stream, byteCount: 64 << 20)
        let forward = try plan.forward(query: tensors[0], key: tensors[1], value: tensors[2], on: stream)
        let gradients = try plan.backward(
            query: tensors[0], key: tensors[1], value: tensors[2], forward: forward, outputGradient: tensors[3], on: stream)
        try stream.synchronize()
        let planGradients = AttentionGradients(
            query: try gradients.query.copyToHost(), key: try gradients.key.copyToHost(),
            value: try gradients.value.copyToHost(),
            tableGradients: try gradients.tableGradients.mapValues { try $0.copyToHost() })
        let failure = try comparePacked(
            [("O", forward.output.copyToHost(), want.output), ("LSE", forward.logSumExp.copyToHost(), want.logSumExp)],
            tolerance: tolerance) ?? comparePacked(planGradients, wantGradients, tolerance: 2 * tolerance)
        return failure.map { "PackedAttentionPlan: \($0)" }
    }

    /// Allocates `byteCount` bytes from the pool on `stream`, fills them with NaN (all bits set) and frees them, so
    /// that the next allocations on `stream` are likely to get NaN-filled memory: outputs a call fails to write
    /// then show.
    private func poisonPool(on stream: CUDAStream, byteCount: Int) throws {
        let junk = try DeviceBuffer(device: device, byteCount: byteCount, stream: stream)
        try junk.fill(0xFF, stream: stream)
    }

    private func comparePacked(_ pairs: [(String, Tensor, Tensor)], tolerance: Float) -> String? {
        for (name, got, want) in pairs {
            guard got.shape == want.shape else { return "\(name) has shape \(got.shape), expected \(want.shape)" }
            if let failure = compare(name, got.floats(), want.floats(), tolerance: tolerance) { return failure }
        }
        return nil
    }

    private func comparePacked(_ got: AttentionGradients, _ want: AttentionGradients, tolerance: Float) -> String? {
        guard got.tableGradients.keys.sorted() == want.tableGradients.keys.sorted() else {
            return "table gradients for \(got.tableGradients.keys.sorted()), expected \(want.tableGradients.keys.sorted())"
        }
        let tables = want.tableGradients.compactMap { name, reference in
            got.tableGradients[name].map { ("∂/∂\(name)", $0, reference) }
        }
        return comparePacked(
            [("dQ", got.query, want.query), ("dK", got.key, want.key), ("dV", got.value, want.value)],
            tolerance: tolerance)
            ?? comparePacked(tables, tolerance: 2 * tolerance)
    }

    /// A NaN key row in sequence 1 takes the one-sequence-at-a-time path; the results must still match the CPU's,
    /// NaN exactly where it has NaN.
    private func packedNonFinite(_ random: inout SplitMix64) throws -> String? {
        let testCase = PackedCase(label: "", dtype: .bfloat16, lengths: [(40, 40), (50, 70), (30, 30)], heads: (2, 1),
                                  dims: (64, 64), options: .init(isCausal: true))
        let (sequences, host) = try packedInputs(testCase, &random)
        try host[1].narrowed(axis: 0, range: 45..<46)
            .copy(from: Tensor([Float](repeating: .nan, count: 64), shape: [1, 1, 64]))
        let results = try [Attention(device: .cpu), Attention(device: .cuda(device.ordinal))].map { attention in
            let forward = try attention.forward(
                query: host[0], key: host[1], value: host[2], sequences: sequences, options: testCase.options)
            let gradients = try attention.backward(
                query: host[0], key: host[1], value: host[2], sequences: sequences, forward: forward,
                outputGradient: host[3])
            return (forward, gradients)
        }
        let (cpu, gpu) = (results[0], results[1])
        return comparePacked([("O", gpu.0.output, cpu.0.output), ("LSE", gpu.0.logSumExp, cpu.0.logSumExp)],
                             tolerance: 2e-2)
            ?? comparePacked(gpu.1, cpu.1, tolerance: 2e-2)
    }

    /// A packed plan whose mods read `b` has a plan per sequence; they and a second packed plan of other lengths
    /// and values share the compiled kernels.
    private func packedNoRecompilation(_ random: inout SplitMix64) throws -> String? {
        func run(lengths: [(Int, Int)], windows: [Int32]) throws {
            let table = try IntTable(name: "window", values: windows, shape: [windows.count])
            let testCase = PackedCase(
                label: "", dtype: .bfloat16, lengths: lengths, heads: (2, 2), dims: (64, 64),
                options: .init(mask: MaskMod { b, _, q, kv in q - kv < table[b] }, scoreMod: .softCap(30)))
            let (sequences, host) = try packedInputs(testCase, &random)
            let problem = try PackedProblem(
                query: host[0], key: host[1], value: host[2], sequences: sequences, options: testCase.options)
            let plan = try PackedAttentionPlan(problem, device: device, includesBackward: true, cache: cache)
            let stream = try CUDAStream(device: device)
            let tensors = try host.map { try DeviceTensor(copying: $0, to: device) }
            let forward = try plan.forward(query: tensors[0], key: tensors[1], value: tensors[2], on: stream)
            _ = try plan.backward(
                query: tensors[0], key: tensors[1], value: tensors[2], forward: forward, outputGradient: tensors[3],
                on: stream)
            try stream.synchronize()
        }
        try run(lengths: [(30, 50), (64, 64)], windows: [10, 20])
        let loaded = cache.loadedModuleCount
        try run(lengths: [(100, 20), (7, 7), (65, 130)], windows: [3, 50, 8])
        let added = cache.loadedModuleCount - loaded
        return added == 0 ? nil : "\(added) more kernels were compiled or loaded for new lengths and sequences"
    }
}
