/// Every sample mod (each built-in, operator-heavy text and random compositions) through the GPU's forward and
/// backward passes against the CPU's, and the proof that new constants, tables, lengths and batch sizes reuse the
/// compiled attention kernels.
extension CUDAConformance {
    func attentionModChecks() -> [Check] {
        var generator = SplitMix64(seed: seed ^ 0xa77e)
        guard let masks = try? ModSamples.masks(), let scoreMods = try? ModSamples.scoreMods(),
              let composed = try? ModSamples.compositions(count: 3, using: &generator) else {
            return [("attention with sample mods", { _ in "the sample mods failed to build" })]
        }
        let shape = (b: 2, hq: 3, hkv: 3, sq: 150, skv: ModSamples.length, d: 64, dv: 64)
        let maskCases = (masks + composed.masks).enumerated().map { index, sample in
            AttentionCase(label: "mask \(sample.label)", dtype: index % 2 == 0 ? .bfloat16 : .float16, shape: shape,
                          options: .init(mask: sample.mask))
        }
        let scoreCases = (scoreMods + composed.scoreMods).enumerated().map { index, sample in
            AttentionCase(label: "score mod \(sample.label), causal", dtype: index % 2 == 0 ? .float16 : .bfloat16,
                          shape: shape, options: .init(isCausal: true, scoreMod: sample.scoreMod))
        }
        return (maskCases + scoreCases).map { testCase in
            ("attention with \(testCase.label)", { random in
                try self.rejectedAlike(testCase, &random) ?? self.forwardMatches(testCase, &random)
                    ?? self.backward(testCase, &random)
            })
        } + [("attention kernels: new values, lengths and batch sizes compile nothing", noRecompilation)]
    }

    /// Nil when the CPU accepts the mods for this shape; else whether the GPU rejects them with the same error (a
    /// mask that divides by zero somewhere is refused on both devices before anything runs).
    private func rejectedAlike(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> String?? {
        let tensors = try inputs(testCase, &random)
        func failure(_ attend: () throws -> AttentionOutput) -> String? {
            do {
                _ = try attend()
                return nil
            } catch {
                return "\(error)"
            }
        }
        guard let cpu = failure({
            try Attention(device: .cpu).forward(query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options)
        }) else { return nil }
        let gpu = failure {
            try gpuForward(
                query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options)
        }
        return .some(gpu == cpu ? nil : "the CPU refused it (\(cpu)), the GPU \(gpu.map { "refused it (\($0))" } ?? "ran it")")
    }

    /// The GPU forward's O (relative norm error) and LSE (element by element, −∞ exactly) against the CPU's.
    private func forwardMatches(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> String? {
        let tensors = try inputs(testCase, &random)
        let gpu = try gpuForward(
            query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options)
        let cpu = try Attention(device: .cpu).forward(
            query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options, outputDType: .float32)
        if let failure = compare("O", gpu.output.floats(), cpu.output.floats(), tolerance: 1e-2) { return failure }
        for (index, (got, want)) in zip(gpu.logSumExp.floats(), cpu.logSumExp.floats()).enumerated()
        where !(got == want || abs(got - want) <= 2e-3 * max(1, abs(want))) {
            return "LSE at row \(index): GPU \(got), CPU \(want)"
        }
        return nil
    }

    private func noRecompilation(_ random: inout SplitMix64) throws -> String? {
        func run(window: Int, bias: [Float], batch: Int, length: Int) throws {
            let relative = try ScoreMod.relativePositionBias(bias, heads: 2, maxDistance: bias.count / 4)
            let testCase = AttentionCase(
                label: "", dtype: .bfloat16, shape: (batch, 2, 2, length, length, 64, 64),
                options: .init(mask: .slidingWindow(window), scoreMod: relative))
            let tensors = try inputs(testCase, &random)
            let forward = try gpuForward(
                query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options)
            _ = try gpuBackward(
                query: tensors[0], key: tensors[1], value: tensors[2], forward: forward, outputGradient: tensors[3],
                options: testCase.options)
        }
        try run(window: 40, bias: (0..<2 * 21).map { Float($0) / 50 }, batch: 1, length: 100)
        let loaded = cache.loadedModuleCount
        try run(window: 77, bias: (0..<2 * 61).map { -Float($0) / 30 }, batch: 3, length: 230)
        let added = cache.loadedModuleCount - loaded
        return added == 0 ? nil : "\(added) more kernels were compiled or loaded for new values"
    }
}
