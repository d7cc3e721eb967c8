/// The public device API, ``AttentionPlan``, on a real device: device-resident views against the CPU, outputs
/// written into caller tensors, a forward and backward captured as a graph and replayed, score-mod values updated in
/// place, and bad calls refused before anything is queued.
extension CUDAConformance {
    func planChecks() -> [Check] {
        let bias = try? ScoreMod.relativePositionBias((0..<2 * 41).map { Float($0) / 80 - 0.5 }, heads: 2, maxDistance: 20)
        var cases = [
            AttentionCase(label: "bf16 D=64 GQA 4:2 causal, BSHD, Sq<Skv", dtype: .bfloat16,
                          shape: (2, 4, 2, 100, 177, 64, 64), layout: .bshd, options: .init(isCausal: true)),
            AttentionCase(label: "fp32 D=80 sliding window 30 + soft-cap", dtype: .float32,
                          shape: (1, 2, 1, 90, 90, 80, 80), options: .init(mask: .slidingWindow(30), scoreMod: .softCap(20))),
        ]
        if let documents = try? BlockMask(
            MaskMod.documentCausal(ids: (0..<200).map { $0 / 70 }), batch: 1, heads: 4, queryLength: 200, keyLength: 200) {
            cases.append(AttentionCase(label: "bf16 D=64 GQA 4:1 block mask built once (documents, causal)", dtype: .bfloat16,
                                       shape: (1, 4, 1, 200, 200, 64, 64), options: .init(blockMask: documents)))
        }
        if let bias {
            cases.append(AttentionCase(label: "fp16 D=128 relative-position bias (table gradient)", dtype: .float16,
                                       shape: (1, 2, 2, 130, 130, 128, 128), options: .init(isCausal: true, scoreMod: bias)))
        }
        return cases.map { testCase in ("plan: device tensors, \(testCase.label)", { try self.planMatchesCPU(testCase, &$0) }) }
            + [("plan: into caller tensors, and a captured graph of forward and backward replayed twice", planIntoAndGraph),
               ("plan: updateScoreMod changes values in place, seen by a graph, without new kernels", planUpdate),
               ("plan: bad calls throw and queue nothing", planRefusals)]
    }

    /// Q, K, V, dO of a case on the device, with the case's layout.
    func deviceInputs(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> ([Tensor], [DeviceTensor]) {
        let host = try inputs(testCase, &random)
        return (host, try host.map { try DeviceTensor(copying: $0, to: device) })
    }

    func planMatchesCPU(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> String? {
        let (host, tensors) = try deviceInputs(testCase, &random)
        let s = testCase.shape
        let shape = try AttentionShape(
            batch: s.b, queryHeads: s.hq, keyValueHeads: s.hkv, queryLength: s.sq, keyLength: s.skv, headDim: s.d,
            valueDim: s.dv, dtype: testCase.dtype)
        let plan = try AttentionPlan(
            AttentionProblem(shape: shape, options: testCase.options), device: device, includesBackward: true, cache: cache)
        let stream = try CUDAStream(device: device)
        let forward = try plan.forward(query: tensors[0], key: tensors[1], value: tensors[2], on: stream)
        let gradients = try plan.backward(
            query: tensors[0], key: tensors[1], value: tensors[2], forward: forward, outputGradient: tensors[3], on: stream)
        try stream.synchronize()
        let cpu = Attention(device: .cpu)
        let want = try cpu.forward(query: host[0], key: host[1], value: host[2], options: testCase.options, outputDType: .float32)
        let wantGradients = try cpu.backward(
            query: host[0], key: host[1], value: host[2], forward: want, outputGradient: host[3], options: testCase.options,
            gradientDType: .float32)
        let tolerance: Float = testCase.dtype == .float32 ? 1e-4 : testCase.dtype == .float16 ? 5e-3 : 2e-2
        let pairs = [("O", forward.output, want.output), ("LSE", forward.logSumExp, want.logSumExp),
                     ("dQ", gradients.query, wantGradients.query), ("dK", gradients.key, wantGradients.key),
                     ("dV", gradients.value, wantGradients.value)]
            + wantGradients.tableGradients.compactMap { name, reference in
                gradients.tableGradients[name].map { ("∂/∂\(name)", $0, reference) }
            }
        guard gradients.tableGradients.count == wantGradients.tableGradients.count else {
            return "\(gradients.tableGradients.count) table gradients, expected \(wantGradients.tableGradients.count)"
        }
        for (name, got, reference) in pairs {
            if let failure = compare(name, try got.copyToHost().floats(), reference.floats(), tolerance: 2 * tolerance) {
                return failure
            }
        }
        switch (gradients.sinkGradient, wantGradients.sinkGradient, testCase.options.sinks) {
        case (nil, nil, _): return nil
        case let (got?, reference?, sinks?):
            return sinkGradientFailure(
                "∂/∂sinks", got: try got.copyToHost().floats(), want: reference.floats(), forward: want,
                outputGradient: host[3], sinks: sinks, tolerance: tolerance)
        default: return "a sink gradient on one side only"
        }
    }

    /// A plan and inputs for the checks below: bf16 D=64, GQA 2:1, causal sliding window, soft-capped.
    private func smallPlan(_ random: inout SplitMix64, scoreMod: ScoreMod = .softCap(30))
        throws -> (AttentionPlan, [Tensor], [DeviceTensor]) {
        let testCase = AttentionCase(
            label: "", dtype: .bfloat16, shape: (1, 2, 1, 150, 150, 64, 64),
            options: .init(isCausal: true, mask: .slidingWindow(70), scoreMod: scoreMod))
        let (host, tensors) = try deviceInputs(testCase, &random)
        let plan = try AttentionPlan(
            AttentionProblem(shape: AttentionShape(query: host[0], key: host[1], value: host[2]), options: testCase.options),
            device: device, includesBackward: true, cache: cache)
        return (plan, host, tensors)
    }

    /// New, NaN-filled outputs and gradients of a plan's shapes (the sinks' gradient too when it has sinks),
    /// allocated before any capture.
    func poisonedOutputs(_ plan: AttentionPlan, on stream: CUDAStream)
        throws -> (DeviceAttentionOutput, DeviceAttentionGradients) {
        let shape = plan.shape
        func tensor(_ dims: [Int], _ dtype: DType) throws -> DeviceTensor {
            let tensor = try DeviceTensor(device: device, dtype: dtype, shape: dims, stream: stream)
            try tensor.buffer.fill(0xFF, stream: stream)
            return tensor
        }
        return (DeviceAttentionOutput(output: try tensor(shape.outputShape, shape.dtype),
                                      logSumExp: try tensor(shape.logSumExpShape, .float32)),
                DeviceAttentionGradients(query: try tensor(shape.queryShape, shape.dtype),
                                         key: try tensor(shape.keyShape, shape.dtype),
                                         value: try tensor(shape.valueShape, shape.dtype),
                                         sinkGradient: plan.sinks == nil ? nil : try tensor([shape.queryHeads], .float32)))
    }

    /// Every output's bytes, in one array per tensor.
    func bytes(_ tensors: [DeviceTensor]) throws -> [[UInt8]] {
        try tensors.map { try $0.buffer.bytes() }
    }

    /// Whether every byte of the tensors' buffers still holds the 0xFF poison written before refused calls.
    func arePoisoned(_ tensors: [DeviceTensor]) throws -> Bool {
        try bytes(tensors).allSatisfy { $0.allSatisfy { $0 == 0xFF } }
    }

    /// "`label` was accepted" for the first call that does not throw; nil when every call is refused.
    func firstAccepted(_ calls: [(String, () throws -> Void)]) -> String? {
        for (label, call) in calls {
            do {
                try call()
                return "\(label) was accepted"
            } catch {}
        }
        return nil
    }

    private func planIntoAndGraph(_ random: inout SplitMix64) throws -> String? {
        let (plan, _, t) = try smallPlan(&random)
        let stream = try CUDAStream(device: device)
        let allocated = try plan.forward(query: t[0], key: t[1], value: t[2], on: stream)
        let allocatedGradients = try plan.backward(
            query: t[0], key: t[1], value: t[2], forward: allocated, outputGradient: t[3], on: stream)
        let (forward, gradients) = try poisonedOutputs(plan, on: stream)
        try plan.forward(query: t[0], key: t[1], value: t[2], into: forward, on: stream)
        try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3], into: gradients, on: stream)
        try stream.synchronize()
        let want = try bytes([allocated.output, allocated.logSumExp, allocatedGradients.query, allocatedGradients.key,
                              allocatedGradients.value])
        let outputs = [forward.output, forward.logSumExp, gradients.query, gradients.key, gradients.value]
        if try bytes(outputs) != want { return "outputs written into caller tensors differ from allocated ones" }

        let (graphForward, graphGradients) = try poisonedOutputs(plan, on: stream)
        let graph = try CUDAGraph.capture(on: stream) {
            try plan.forward(query: t[0], key: t[1], value: t[2], into: graphForward, on: stream)
            try plan.backward(query: t[0], key: t[1], value: t[2], forward: graphForward, outputGradient: t[3],
                              into: graphGradients, on: stream)
        }
        let graphOutputs = [graphForward.output, graphForward.logSumExp, graphGradients.query, graphGradients.key,
                            graphGradients.value]
        try stream.synchronize()
        if try bytes([graphForward.output]) != [[UInt8](repeating: 0xFF, count: graphForward.output.buffer.byteCount)] {
            return "capturing ran the work"
        }
        for replay in 1...2 {
            try graph.launch(on: stream)
            try stream.synchronize()
            if try bytes(graphOutputs) != want { return "replay \(replay) of the graph differs from direct calls" }
        }
        return nil
    }

    private func planUpdate(_ random: inout SplitMix64) throws -> String? {
        let (plan, host, t) = try smallPlan(&random, scoreMod: .softCap(30))
        let stream = try CUDAStream(device: device)
        let (forward, _) = try poisonedOutputs(plan, on: stream)
        let graph = try CUDAGraph.capture(on: stream) {
            try plan.forward(query: t[0], key: t[1], value: t[2], into: forward, on: stream)
        }
        let loaded = cache.loadedModuleCount
        try plan.updateScoreMod(.softCap(3), on: stream)
        try graph.launch(on: stream)
        try stream.synchronize()
        let options = AttentionOptions(isCausal: true, mask: .slidingWindow(70), scoreMod: .softCap(3))
        let want = try Attention(device: .cpu).forward(
            query: host[0], key: host[1], value: host[2], options: options, outputDType: .float32)
        if let failure = compare("O after the update", try forward.output.copyToHost().floats(), want.output.floats(),
                                 tolerance: 4e-2) {
            return failure
        }
        let added = cache.loadedModuleCount - loaded
        return added == 0 ? nil : "\(added) kernels were compiled or loaded for new values"
    }

    private func planRefusals(_ random: inout SplitMix64) throws -> String? {
        let (plan, _, t) = try smallPlan(&random)
        let stream = try CUDAStream(device: device)
        let (forward, gradients) = try poisonedOutputs(plan, on: stream)
        try stream.synchronize()
        let strided = try DeviceTensor(
            buffer: gradients.query.buffer, dtype: .bfloat16, shape: [1, 2, 75, 64], strides: [19200, 9600, 128, 1])
        let forwardOnly = try AttentionPlan(
            AttentionProblem(shape: plan.shape, options: plan.options), device: device, includesBackward: false,
            cache: cache)
        let calls: [(String, () throws -> Void)] = [
            ("K as Q", { _ = try plan.forward(query: t[1], key: t[1], value: t[2], on: stream) }),
            ("a Float32 log-sum-exp given as O", {
                try plan.forward(query: t[0], key: t[1], value: t[2],
                                 into: DeviceAttentionOutput(output: forward.logSumExp, logSumExp: forward.logSumExp), on: stream)
            }),
            ("a strided dQ", {
                try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                                  into: DeviceAttentionGradients(query: strided, key: gradients.key, value: gradients.value),
                                  on: stream)
            }),
            ("dQ written over the output it reads", {
                try plan.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                                  into: DeviceAttentionGradients(query: forward.output, key: gradients.key, value: gradients.value),
                                  on: stream)
            }),
            ("backward on a forward-only plan", {
                _ = try forwardOnly.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                                             on: stream)
            }),
            ("a score mod of another structure", { try plan.updateScoreMod(.alibi(heads: 2), on: stream) }),
        ]
        if let accepted = firstAccepted(calls) { return accepted }
        try stream.synchronize()
        let untouched = try arePoisoned([forward.output, gradients.key])
        return untouched ? nil : "a refused call wrote an output"
    }
}
