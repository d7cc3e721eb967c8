/// Ring attention over the machine's GPUs (present only with two or more) against one GPU's ``AttentionPlan`` on the
/// whole sequence and the CPU in Float32: forward and backward, under causal, window, document, soft-cap and ALiBi
/// (with table gradients and two head groups), on 2 and 4 GPUs; the same bits on a second run; bad calls refused.
extension CUDAConformance {
    func contextParallelChecks() -> [Check] {
        // Started by a launcher, one process per GPU: only the check of that mode (every rank runs it).
        if ProcessEnvironment.current["WORLD_SIZE"] != nil {
            return [("context parallel: one process per GPU (launcher variables), causal and window", contextParallelPerProcess)]
        }
        let count = (try? CUDADriver.deviceCount()) ?? 0
        guard count >= 2 else { return [] }
        var checks = [Check]()
        for world in [2, 4] where world <= count {
            for (name, options, headGroups) in contextParallelCases() {
                checks.append(("context parallel: \(world) GPUs, \(name), forward and backward against one GPU and the CPU",
                               { try self.contextParallelMatches(world: world, options: options(), headGroups: headGroups, &$0) }))
            }
        }
        checks.append(("context parallel: 2 GPUs, a second run gives the same bits", contextParallelDeterminism))
        checks.append(("context parallel: bad shards and streams are refused", contextParallelRefusals))
        return checks
    }

    /// Sequence length of the checks: 4096, so that chunks are 1024 rows on 2 GPUs and 512 on 4.
    private static let contextLength = 4096

    /// Name, options (made when the check runs, so that a mod that cannot be built fails its check), head groups.
    private func contextParallelCases() -> [(String, () throws -> AttentionOptions, Int)] {
        let n = Self.contextLength
        // Documents of ragged lengths that straddle chunk and rank edges.
        let ids = (0..<n).map { $0 < 700 ? 0 : $0 < 701 ? 1 : $0 < 2600 ? 2 : $0 < 3100 ? 3 : 4 }
        return [
            ("causal", { AttentionOptions(isCausal: true) }, 1),
            ("sliding window 1000", { AttentionOptions(mask: .slidingWindow(1000)) }, 1),
            ("5 ragged documents, causal", { AttentionOptions(mask: try .documentCausal(ids: ids)) }, 1),
            ("soft-cap 30, causal", { AttentionOptions(isCausal: true, scoreMod: .softCap(30)) }, 1),
            ("ALiBi, causal, 2 head groups", { AttentionOptions(isCausal: true, scoreMod: try .alibi(heads: 8)) }, 2),
        ]
    }

    /// A whole problem's random bf16 inputs (B=2, Hq=8, Hkv=2, D=128) and their results on the CPU and on one GPU.
    private struct WholeProblem {
        let shape: AttentionShape
        let query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor

        init(_ random: inout SplitMix64) throws {
            shape = try AttentionShape(batch: 2, queryHeads: 8, keyValueHeads: 2, queryLength: CUDAConformance.contextLength,
                                       headDim: 128, dtype: .bfloat16)
            func tensor(_ dims: [Int]) throws -> Tensor {
                try Tensor((0..<dims.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &random) }, shape: dims,
                           dtype: .bfloat16)
            }
            (query, key, value, outputGradient) = try (tensor(shape.queryShape), tensor(shape.keyShape),
                                                       tensor(shape.valueShape), tensor(shape.outputShape))
        }
    }

    /// Runs the ring on `world` GPUs and returns, gathered in sequence order: O, LSE, dQ, dK, dV and the table
    /// gradients summed over ranks in rank order.
    private func ring(
        _ problem: WholeProblem, world: Int, options: AttentionOptions, headGroups: Int
    ) throws -> (output: Tensor, logSumExp: Tensor, gradients: AttentionGradients) {
        let devices = try (0..<world).map { try CUDADevice.open($0) }
        let group = try ContextParallelGroup(devices: devices)
        let plan = try ContextParallelPlan(shape: problem.shape, options: options, group: group, headGroups: headGroups)
        let layout = plan.layout
        let streams = try devices.map { try CUDAStream(device: $0) }
        func upload(_ tensor: Tensor, _ rank: Int) throws -> DeviceTensor {
            try DeviceTensor(copying: layout.shard(tensor, rank: rank, worldSize: world), to: devices[rank])
        }
        let inputs = try (0..<world).map { rank in
            ContextParallelInputs(query: try upload(problem.query, rank), key: try upload(problem.key, rank),
                                  value: try upload(problem.value, rank))
        }
        let outputGradients = try (0..<world).map { try upload(problem.outputGradient, $0) }
        let forward = try plan.forward(inputs, on: streams)
        let gradients = try plan.backward(inputs, forward: forward, outputGradients: outputGradients, on: streams)
        for stream in streams { try stream.synchronize() }
        try group.check()
        func gathered(_ tensors: [DeviceTensor]) throws -> Tensor { try layout.gather(tensors.map { try $0.copyToHost() }) }
        var tables: [String: Tensor] = [:]
        for name in gradients[0].tableGradients.keys {
            let parts = try gradients.map { try $0.tableGradients[name].map { try $0.copyToHost().floats() } ?? [] }
            let sum = parts.dropFirst().reduce(parts[0]) { zip($0, $1).map { $0 + $1 } }
            tables[name] = try Tensor(sum, shape: try gradients[0].tableGradients[name]?.copyToHost().shape ?? [sum.count])
        }
        return (try gathered(forward.map(\.output)), try gathered(forward.map(\.logSumExp)),
                AttentionGradients(query: try gathered(gradients.map(\.query)), key: try gathered(gradients.map(\.key)),
                                   value: try gathered(gradients.map(\.value)), tableGradients: tables))
    }

    private func contextParallelMatches(
        world: Int, options: AttentionOptions, headGroups: Int, _ random: inout SplitMix64
    ) throws -> String? {
        let problem = try WholeProblem(&random)
        let (q, k, v, dO) = (problem.query, problem.key, problem.value, problem.outputGradient)
        let cpu = Attention()
        let (q32, k32, v32, dO32) = try (q.converted(to: .float32), k.converted(to: .float32), v.converted(to: .float32),
                                         dO.converted(to: .float32))
        let reference = try cpu.forward(query: q32, key: k32, value: v32, options: options)
        let referenceGradients = try cpu.backward(query: q32, key: k32, value: v32, forward: reference, outputGradient: dO32)

        let plan = try AttentionPlan(shape: problem.shape, options: options, device: device)
        let stream = try CUDAStream(device: device)
        let (dq, dk, dv, ddO) = try (DeviceTensor(copying: q, to: device), DeviceTensor(copying: k, to: device),
                                     DeviceTensor(copying: v, to: device), DeviceTensor(copying: dO, to: device))
        let single = try plan.forward(query: dq, key: dk, value: dv, on: stream)
        let singleGradients = try plan.backward(query: dq, key: dk, value: dv, forward: single, outputGradient: ddO, on: stream)
        try stream.synchronize()

        let ring = try ring(problem, world: world, options: options, headGroups: headGroups)
        var pairs: [(String, [Float], [Float], [Float])] = [
            ("O", ring.output.floats(), try single.output.copyToHost().floats(), reference.output.floats()),
            ("LSE", ring.logSumExp.floats(), try single.logSumExp.copyToHost().floats(), reference.logSumExp.floats()),
            ("dQ", ring.gradients.query.floats(), try singleGradients.query.copyToHost().floats(),
             referenceGradients.query.floats()),
            ("dK", ring.gradients.key.floats(), try singleGradients.key.copyToHost().floats(), referenceGradients.key.floats()),
            ("dV", ring.gradients.value.floats(), try singleGradients.value.copyToHost().floats(),
             referenceGradients.value.floats()),
        ]
        for (name, want) in referenceGradients.tableGradients {
            guard let got = ring.gradients.tableGradients[name], let one = singleGradients.tableGradients[name] else {
                return "no gradient of table \(name) from the ring or one GPU"
            }
            pairs.append(("∂/∂\(name)", got.floats(), try one.copyToHost().floats(), want.floats()))
        }
        var failures = [String]()
        for (name, got, one, want) in pairs {
            let (ringError, singleError) = (relativeDistance(got, want), relativeDistance(one, want))
            if !(ringError <= 1.5 * singleError + 1e-4) {
                failures.append("\(name): ring \(ringError), one GPU \(singleError) from the CPU")
            }
        }
        return failures.isEmpty ? nil : failures.joined(separator: "; ")
    }

    /// This process's rank, joined through ``ContextParallelGroup/fromEnvironment(environment:)``, against one GPU
    /// (this one, on the whole sequence) and the CPU, on its own rows. Every rank draws the same problem (the same
    /// seed and checks).
    private func contextParallelPerProcess(_ random: inout SplitMix64) throws -> String? {
        let group = try ContextParallelGroup.fromEnvironment()
        let (rank, world, local) = (group.ranks[0], group.worldSize, group.devices[0])
        var failures = [String]()
        for options in [AttentionOptions(isCausal: true), AttentionOptions(mask: .slidingWindow(1000))] {
            let problem = try WholeProblem(&random)
            let plan = try ContextParallelPlan(shape: problem.shape, options: options, group: group)
            let stream = try CUDAStream(device: local)
            func shard(_ tensor: Tensor) throws -> Tensor { try plan.layout.shard(tensor, rank: rank, worldSize: world) }
            let (q, k, v, dO) = try [problem.query, problem.key, problem.value, problem.outputGradient].map {
                try DeviceTensor(copying: shard($0), to: local)
            }.quadruple()
            let forward = try plan.forward(query: q, key: k, value: v, on: stream)
            let gradients = try plan.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO, on: stream)
            try stream.synchronize()
            try group.check()

            let (whole, wholeGradients) = try singleGPU(problem, options: options, on: local)
            let cpu = Attention()
            let (q32, k32, v32, dO32) = try [problem.query, problem.key, problem.value, problem.outputGradient]
                .map { try $0.converted(to: .float32) }.quadruple()
            let reference = try cpu.forward(query: q32, key: k32, value: v32, options: options)
            let referenceGradients = try cpu.backward(
                query: q32, key: k32, value: v32, forward: reference, outputGradient: dO32)
            let compared: [(String, DeviceTensor, Tensor, Tensor)] = [
                ("O", forward.output, whole.output, reference.output),
                ("dQ", gradients.query, wholeGradients.query, referenceGradients.query),
                ("dK", gradients.key, wholeGradients.key, referenceGradients.key),
                ("dV", gradients.value, wholeGradients.value, referenceGradients.value),
            ]
            for (name, got, one, want) in compared {
                let (ringError, singleError) = (relativeDistance(try got.copyToHost().floats(), try shard(want).floats()),
                                                relativeDistance(try shard(one).floats(), try shard(want).floats()))
                if !(ringError <= 1.5 * singleError + 1e-4) {
                    failures.append("rank \(rank), \(name): ring \(ringError), one GPU \(singleError) from the CPU")
                }
            }
        }
        return failures.isEmpty ? nil : failures.joined(separator: "; ")
    }

    /// The whole problem on one GPU: O and the gradients, on the host.
    private func singleGPU(
        _ problem: WholeProblem, options: AttentionOptions, on device: CUDADevice
    ) throws -> (output: AttentionOutput, gradients: AttentionGradients) {
        let plan = try AttentionPlan(shape: problem.shape, options: options, device: device)
        let stream = try CUDAStream(device: device)
        let (q, k, v, dO) = try [problem.query, problem.key, problem.value, problem.outputGradient].map {
            try DeviceTensor(copying: $0, to: device)
        }.quadruple()
        let forward = try plan.forward(query: q, key: k, value: v, on: stream)
        let gradients = try plan.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO, on: stream)
        try stream.synchronize()
        return (AttentionOutput(output: try forward.output.copyToHost(), logSumExp: try forward.logSumExp.copyToHost()),
                AttentionGradients(query: try gradients.query.copyToHost(), key: try gradients.key.copyToHost(),
                                   value: try gradients.value.copyToHost(), tableGradients: [:]))
    }

    private func contextParallelDeterminism(_ random: inout SplitMix64) throws -> String? {
        let problem = try WholeProblem(&random)
        let options = AttentionOptions(isCausal: true, scoreMod: try .alibi(heads: 8))
        let first = try ring(problem, world: 2, options: options, headGroups: 1)
        let second = try ring(problem, world: 2, options: options, headGroups: 1)
        for (name, a, b) in [("O", first.output, second.output), ("LSE", first.logSumExp, second.logSumExp),
                             ("dQ", first.gradients.query, second.gradients.query),
                             ("dK", first.gradients.key, second.gradients.key),
                             ("dV", first.gradients.value, second.gradients.value)]
            where a.floats().map(\.bitPattern) != b.floats().map(\.bitPattern) {
            return "\(name) differs between two runs"
        }
        return nil
    }

    private func contextParallelRefusals(_ random: inout SplitMix64) throws -> String? {
        let devices = try (0..<2).map { try CUDADevice.open($0) }
        let group = try ContextParallelGroup(devices: devices)
        let shape = try AttentionShape(batch: 1, queryHeads: 2, keyValueHeads: 2, queryLength: 1024, headDim: 64,
                                       dtype: .bfloat16)
        let plan = try ContextParallelPlan(shape: shape, options: .init(isCausal: true), group: group)
        let streams = try devices.map { try CUDAStream(device: $0) }
        func shard(_ rows: Int, on device: CUDADevice) throws -> DeviceTensor {
            try DeviceTensor(device: device, dtype: .bfloat16, shape: [1, 2, rows, 64])
        }
        let good = try devices.map { device in
            ContextParallelInputs(query: try shard(512, on: device), key: try shard(512, on: device),
                                  value: try shard(512, on: device))
        }
        var wrongLength = good
        wrongLength[1].query = try shard(256, on: devices[1])
        var wrongDevice = good
        wrongDevice[0].key = good[1].key
        let attempts: [(String, () throws -> Void)] = [
            ("one shard for two ranks", { _ = try plan.forward([good[0]], on: streams) }),
            ("a shard of the wrong length", { _ = try plan.forward(wrongLength, on: streams) }),
            ("a key on the other rank's GPU", { _ = try plan.forward(wrongDevice, on: streams) }),
            ("streams in the wrong order", { _ = try plan.forward(good, on: streams.reversed()) }),
            ("a length that does not split", {
                _ = try ContextParallelPlan(
                    shape: AttentionShape(batch: 1, queryHeads: 2, keyValueHeads: 2, queryLength: 1000, headDim: 64,
                                          dtype: .bfloat16), group: group)
            }),
        ]
        for (name, attempt) in attempts {
            do {
                try attempt()
                return "\(name) was accepted"
            } catch is FlexAttentionError {
            } catch is CUDAError {
            }
        }
        return nil
    }
}

extension Array {
    /// The first four elements, for unpacking a mapped list of four.
    fileprivate func quadruple() throws -> (Element, Element, Element, Element) {
        guard count == 4 else { throw FlexAttentionError.invalidArgument("expected 4 values, not \(count)") }
        return (self[0], self[1], self[2], self[3])
    }
}

/// ‖got − want‖ / ‖want‖.
private func relativeDistance(_ got: [Float], _ want: [Float]) -> Double {
    guard got.count == want.count else { return .infinity }
    var (difference, norm) = (0.0, 0.0)
    for (x, y) in zip(got, want) {
        difference += Double(x - y) * Double(x - y)
        norm += Double(y) * Double(y)
    }
    return (difference / max(norm, .leastNormalMagnitude)).squareRoot()
}
