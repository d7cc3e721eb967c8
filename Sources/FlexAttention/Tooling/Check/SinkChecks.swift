/// Attention sinks on a plan, on a real device: forward and backward (the sinks' gradient included) against the CPU's
/// `Attention` with the same sinks on every family, a captured graph replayed, new logits in place, the same bits
/// twice, and bad calls refused before anything is queued.
extension CUDAConformance {
    func sinkChecks() -> [Check] {
        // Head 1 keeps no key and heads 2's first rows none: rows whose LSE′ is their sink (finite) or stays −∞.
        let emptyRows = MaskMod { _, h, q, kv in h != 1 && !(h == 2 && q < 7) && kv <= q + 10 }
        let cases = [
            AttentionCase(label: "bf16 D=64 GQA 4:2 causal, a −∞ sink", dtype: .bfloat16,
                          shape: (2, 4, 2, 100, 100, 64, 64),
                          options: .init(isCausal: true, sinks: [0.5, -1, 2, -.infinity])),
            AttentionCase(label: "fp16 D=128 GQA 4:1 bottom-right causal, BSHD, Sq<Skv", dtype: .float16,
                          shape: (1, 4, 1, 70, 150, 128, 128), layout: .bshd,
                          options: .init(isCausal: true, causalAlignment: .bottomRight, sinks: [3, 0, -2, 1])),
            AttentionCase(label: "fp32 D=48 GQA 4:2, a head and rows that keep no key, a −∞ sink on the empty rows",
                          dtype: .float32, shape: (2, 4, 2, 60, 60, 48, 48),
                          options: .init(mask: emptyRows, scoreMod: .softCap(20), sinks: [1, 0.25, -.infinity, -0.5])),
        ]
        return cases.map { testCase in
            ("sinks: plan against the CPU, \(testCase.label)", { try self.planMatchesCPU(testCase, &$0) })
        }
            + [("sinks: forward and backward into caller tensors, and captured in a graph, replayed twice", sinkGraph),
               ("sinks: updateSinks changes the logits in place, seen by a graph and the backward, without new kernels",
                sinkUpdate),
               ("sinks: the sink gradient has the same bits on a second run", sinkDeterminism),
               ("sinks: bad sink gradients and updates throw and queue nothing", sinkRefusals),
               ("sinks: Attention(device: .cuda) joins them on the host as the CPU does", hostSinks)]
    }

    /// A bf16 D=64 GQA 2:1 causal sliding-window plan with `sinks`, and its inputs.
    private func sinkPlan(_ random: inout SplitMix64, sinks: [Float] = [0.75, -.infinity], length: Int = 150)
        throws -> (AttentionPlan, [Tensor], [DeviceTensor]) {
        let testCase = AttentionCase(
            label: "", dtype: .bfloat16, shape: (2, 2, 1, length, length, 64, 64),
            options: .init(isCausal: true, mask: .slidingWindow(70), sinks: sinks))
        let (host, tensors) = try deviceInputs(testCase, &random)
        let plan = try AttentionPlan(
            AttentionProblem(shape: AttentionShape(query: host[0], key: host[1], value: host[2]), options: testCase.options),
            device: device, includesBackward: true, cache: cache)
        return (plan, host, tensors)
    }

    private func sinkGraph(_ random: inout SplitMix64) throws -> String? {
        let (plan, _, t) = try sinkPlan(&random)
        let stream = try CUDAStream(device: device)
        let direct = try plan.forward(query: t[0], key: t[1], value: t[2], on: stream)
        let directGradients = try plan.backward(
            query: t[0], key: t[1], value: t[2], forward: direct, outputGradient: t[3], on: stream)
        guard let directSinkGradient = directGradients.sinkGradient else { return "no sink gradient was returned" }
        // The copies below do not wait for a non-blocking stream: under racecheck's slow kernels they read too early.
        try stream.synchronize()
        let want = try bytes([direct.output, direct.logSumExp, directGradients.query, directGradients.key,
                              directGradients.value, directSinkGradient])
        let (forward, gradients) = try poisonedOutputs(plan, on: stream)
        let graph = try CUDAGraph.capture(on: stream) {
            try plan.forward(query: t[0], key: t[1], value: t[2], into: forward, on: stream)
            try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                              into: gradients, on: stream)
        }
        guard let sinkGradient = gradients.sinkGradient else { return "no sink gradient to write into" }
        let outputs = [forward.output, forward.logSumExp, gradients.query, gradients.key, gradients.value, sinkGradient]
        try stream.synchronize()
        if try !arePoisoned([forward.logSumExp, sinkGradient]) {
            return "capturing ran the work"
        }
        let names = ["O", "LSE", "dQ", "dK", "dV", "∂/∂sinks"]
        for replay in 1...2 {
            try graph.launch(on: stream)
            try stream.synchronize()
            let got = try bytes(outputs)
            if let index = got.indices.first(where: { got[$0] != want[$0] }) {
                return "replay \(replay) of the graph differs from direct calls in \(names[index])"
            }
        }
        return nil
    }

    private func sinkUpdate(_ random: inout SplitMix64) throws -> String? {
        let (plan, host, t) = try sinkPlan(&random)
        let stream = try CUDAStream(device: device)
        let (forward, _) = try poisonedOutputs(plan, on: stream)
        let graph = try CUDAGraph.capture(on: stream) {
            try plan.forward(query: t[0], key: t[1], value: t[2], into: forward, on: stream)
        }
        let loaded = cache.loadedModuleCount
        let sinks: [Float] = [-.infinity, 1.5]
        try plan.updateSinks(sinks, on: stream)
        try graph.launch(on: stream)
        let gradients = try plan.backward(
            query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3], on: stream)
        try stream.synchronize()
        let options = AttentionOptions(isCausal: true, mask: .slidingWindow(70), sinks: sinks)
        let cpu = Attention(device: .cpu)
        let want = try cpu.forward(query: host[0], key: host[1], value: host[2], options: options, outputDType: .float32)
        let wantGradients = try cpu.backward(
            query: host[0], key: host[1], value: host[2], forward: want, outputGradient: host[3], gradientDType: .float32)
        guard let sinkGradient = gradients.sinkGradient, let wantSinkGradient = wantGradients.sinkGradient else {
            return "no sink gradient"
        }
        for (name, got, reference) in [("O after the update", forward.output, want.output),
                                       ("LSE after the update", forward.logSumExp, want.logSumExp)] {
            if let failure = compare(name, try got.copyToHost().floats(), reference.floats(), tolerance: 4e-2) {
                return failure
            }
        }
        if let failure = sinkGradientFailure(
            "∂/∂sinks after the update", got: try sinkGradient.copyToHost().floats(), want: wantSinkGradient.floats(),
            forward: want, outputGradient: host[3], sinks: sinks, tolerance: 2e-2) {
            return failure
        }
        let added = cache.loadedModuleCount - loaded
        return added == 0 ? nil : "\(added) kernels were compiled or loaded for new sinks"
    }

    private func sinkDeterminism(_ random: inout SplitMix64) throws -> String? {
        let (plan, _, t) = try sinkPlan(&random, sinks: [-0.5, 2], length: 700)
        let stream = try CUDAStream(device: device)
        let forward = try plan.forward(query: t[0], key: t[1], value: t[2], on: stream)
        let runs = try (0..<2).map { _ in
            try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3], on: stream)
        }
        try stream.synchronize()
        let sinkGradients = try bytes(runs.compactMap(\.sinkGradient))
        guard sinkGradients.count == 2 else { return "no sink gradient" }
        return sinkGradients[0] == sinkGradients[1] ? nil : "the sink gradient differs between two runs"
    }

    /// The host-tensor path runs its plan without sinks and joins them as `Attention` does on the CPU.
    private func hostSinks(_ random: inout SplitMix64) throws -> String? {
        let testCase = AttentionCase(label: "", dtype: .bfloat16, shape: (1, 2, 1, 100, 100, 64, 64),
                                     options: .init(isCausal: true, sinks: [1, -.infinity]))
        let t = try inputs(testCase, &random)
        var results: [(AttentionOutput, AttentionGradients)] = []
        for attention in [Attention(device: .cuda(device.ordinal)), Attention(device: .cpu)] {
            let forward = try attention.forward(
                query: t[0], key: t[1], value: t[2], options: testCase.options, outputDType: .float32)
            results.append((forward, try attention.backward(
                query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3], gradientDType: .float32)))
        }
        let ((forward, gradients), (want, wantGradients)) = (results[0], results[1])
        guard let sinkGradient = gradients.sinkGradient, let wantSinkGradient = wantGradients.sinkGradient else {
            return "no sink gradient"
        }
        for (name, got, reference) in [("O", forward.output, want.output), ("LSE", forward.logSumExp, want.logSumExp),
                                       ("dQ", gradients.query, wantGradients.query)] {
            if let failure = compare(name, got.floats(), reference.floats(), tolerance: 4e-2) { return failure }
        }
        return sinkGradientFailure(
            "∂/∂sinks", got: sinkGradient.floats(), want: wantSinkGradient.floats(), forward: want,
            outputGradient: t[3], sinks: testCase.options.sinks ?? [], tolerance: 2e-2)
    }

    private func sinkRefusals(_ random: inout SplitMix64) throws -> String? {
        let (plan, _, t) = try sinkPlan(&random)
        let stream = try CUDAStream(device: device)
        let (forward, gradients) = try poisonedOutputs(plan, on: stream)
        let before = try plan.forward(query: t[0], key: t[1], value: t[2], on: stream)
        try stream.synchronize()
        let sinkFree = try AttentionPlan(
            AttentionProblem(shape: plan.shape, options: .init(isCausal: true, mask: .slidingWindow(70))),
            device: device, includesBackward: true, cache: cache)
        func into(_ sinkGradient: DeviceTensor?) -> DeviceAttentionGradients {
            DeviceAttentionGradients(query: gradients.query, key: gradients.key, value: gradients.value,
                                     sinkGradient: sinkGradient)
        }
        func backward(_ plan: AttentionPlan, _ sinkGradient: DeviceTensor?) throws {
            try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                              into: into(sinkGradient), on: stream)
        }
        let wide = try DeviceTensor(device: device, dtype: .float32, shape: [3], stream: stream)
        let half = try DeviceTensor(device: device, dtype: .bfloat16, shape: [2], stream: stream)
        let calls: [(String, () throws -> Void)] = [
            ("no sink gradient", { try backward(plan, nil) }),
            ("a sink gradient of 3 heads", { try backward(plan, wide) }),
            ("a bf16 sink gradient", { try backward(plan, half) }),
            ("a sink gradient to a plan without sinks", { try backward(sinkFree, gradients.sinkGradient) }),
            ("3 sinks for 2 heads", { try plan.updateSinks([0, 0, 0], on: stream) }),
            ("a NaN sink", { try plan.updateSinks([0, .nan], on: stream) }),
            ("a +∞ sink", { try plan.updateSinks([.infinity, 0], on: stream) }),
            ("new sinks for a plan without them", { try sinkFree.updateSinks([0, 0], on: stream) }),
            ("a plan with 1 sink for 2 heads", {
                _ = try AttentionPlan(shape: plan.shape, options: .init(sinks: [0]), device: device)
            }),
        ]
        if let accepted = firstAccepted(calls) { return accepted }
        let after = try plan.forward(query: t[0], key: t[1], value: t[2], on: stream)
        try stream.synchronize()
        let untouched = try arePoisoned([forward.output, gradients.key] + (gradients.sinkGradient.map { [$0] } ?? []))
        guard untouched else { return "a refused call wrote an output" }
        return try bytes([after.output, after.logSumExp]) == bytes([before.output, before.logSumExp])
            ? nil : "a refused update changed the sinks"
    }
}
