/// NaN and ±∞ in the inputs through `Attention(device: .cuda(n))` against `Attention(device: .cpu)`: the same
/// outputs NaN (the rules on `Attention.forward` and `backward`), the others within the forward and backward
/// checks' tolerances. Covers the tensor-core, Hopper and CUDA-core families, masks that remove the non-finite rows
/// for some queries or for all, GQA and table gradients.
extension CUDAConformance {
    /// A non-finite value written into column 0 of row `[b, h, s]` of Q, K, V or dO (`input` 0 to 3).
    struct NonFinitePoison {
        var input: Int, b: Int, h: Int, s: Int
        var value: Float = .nan
    }

    /// An attention case with poisoned rows; `masked` when the mask removes every one of them (no output is NaN).
    struct NonFiniteCase {
        var attention: AttentionCase
        var poisons: [NonFinitePoison]
        var masked = false
    }

    func nonFiniteChecks() -> [Check] {
        guard let document = try? MaskMod.document(ids: (0..<150).map { $0 / 40 }),
              let relative = try? ScoreMod.relativePositionBias(
                  (0..<2 * 41).map { Float($0 % 13) * 0.2 - 1.2 }, heads: 2, maxDistance: 20) else {
            return [("non-finite inputs", { _ in "the sample mods failed to build" })]
        }
        let padding = MaskMod { _, _, _, kv in kv < ModInt(100) }
        // At key 0 the score becomes −200 (p underflows to 0) with a NaN slope (0/0): dS must be 0, not 0 · NaN.
        let vanishing = ScoreMod { score, _, _, _, kv in select(kv == 0, sqrt(score * 0.0) - 200.0, score) }
        func nonFinite(_ input: Int, _ b: Int, _ h: Int, _ s: Int, _ value: Float = .nan) -> NonFinitePoison {
            NonFinitePoison(input: input, b: b, h: h, s: s, value: value)
        }
        let cases = [
            NonFiniteCase(
                attention: AttentionCase(label: "fp16 D=64 causal, NaN in V at the last key", dtype: .float16,
                                         shape: (1, 2, 2, 130, 130, 64, 64), options: .init(isCausal: true)),
                poisons: [nonFinite(2, 0, 1, 129)]),
            NonFiniteCase(
                attention: AttentionCase(label: "bf16 D=128 GQA 4:2 sliding window 40: +∞ in K, NaN in dO",
                                         dtype: .bfloat16, shape: (1, 4, 2, 190, 190, 128, 128),
                                         options: .init(mask: .slidingWindow(40))),
                poisons: [nonFinite(1, 0, 1, 70, .infinity), nonFinite(3, 0, 0, 150)]),
            NonFiniteCase(
                attention: AttentionCase(label: "fp16 D=80 −∞ in K and NaN in V past the keys' length",
                                         dtype: .float16, shape: (2, 2, 2, 77, 131, 80, 80),
                                         options: .init(mask: padding)),
                poisons: [nonFinite(1, 1, 0, 110, -.infinity), nonFinite(2, 0, 1, 130)], masked: true),
            NonFiniteCase(
                attention: AttentionCase(label: "fp32 D=48 document mask (CUDA cores): NaN in Q and V, BSHD",
                                         dtype: .float32, shape: (1, 2, 1, 150, 150, 48, 48), layout: .bshd,
                                         options: .init(mask: document)),
                poisons: [nonFinite(0, 0, 1, 10), nonFinite(2, 0, 0, 95)]),
            NonFiniteCase(
                attention: AttentionCase(label: "bf16 D=72 causal (CUDA cores): −∞ in Q, NaN in K", dtype: .bfloat16,
                                         shape: (1, 2, 2, 100, 100, 72, 72), options: .init(isCausal: true)),
                poisons: [nonFinite(0, 0, 0, 50, -.infinity), nonFinite(1, 0, 1, 80)]),
            NonFiniteCase(
                attention: AttentionCase(label: "fp16 D=64 relative position bias, causal: NaN in dO (table gradients)",
                                         dtype: .float16, shape: (1, 2, 2, 120, 120, 64, 64),
                                         options: .init(isCausal: true, scoreMod: relative)),
                poisons: [nonFinite(3, 0, 1, 60)]),
        ] + [(DType.float32, 48), (.float16, 64)].map { dtype, d in
            NonFiniteCase(
                attention: AttentionCase(label: "\(dtype) D=\(d): p underflows to 0 where the score mod's slope is NaN",
                                         dtype: dtype, shape: (1, 2, 2, 70, 70, d, d), options: .init(scoreMod: vanishing)),
                poisons: [], masked: true)
        }
        return cases.map { testCase in
            ("non-finite: \(testCase.attention.label)", { try self.nonFinite(testCase, &$0) })
        }
    }

    private func nonFinite(_ nonFiniteCase: NonFiniteCase, _ random: inout SplitMix64) throws -> String? {
        let testCase = nonFiniteCase.attention
        let tensors = try inputs(testCase, &random)
        for poison in nonFiniteCase.poisons {
            // Written in place through the view's strides, so the case's layout (BHSD or BSHD) is kept.
            let tensor = tensors[poison.input]
            let strides = tensor.strides
            tensor.store(poison.value, atElementOffset: tensor.offset + poison.b * strides[0] + poison.h * strides[1]
                             + poison.s * strides[2])
        }
        let (query, key, value, outputGradient) = (tensors[0], tensors[1], tensors[2], tensors[3])
        let options = testCase.options
        let (cpu, gpu) = (Attention(device: .cpu), Attention(device: .cuda(device.ordinal)))
        let want = try cpu.forward(query: query, key: key, value: value, options: options, outputDType: .float32)
        let got = try gpu.forward(query: query, key: key, value: value, options: options, outputDType: .float32)
        if let failure = compare("O", got.output.floats(), want.output.floats(), tolerance: 1e-2) { return failure }
        for (index, (x, y)) in zip(got.logSumExp.floats(), want.logSumExp.floats()).enumerated()
        where !(x == y || (x.isNaN && y.isNaN) || abs(x - y) <= 2e-3 * max(1, abs(y))) {
            return "LSE at row \(index): GPU \(x), CPU \(y)"
        }

        let wantGradients = try cpu.backward(
            query: query, key: key, value: value, forward: want, outputGradient: outputGradient, options: options,
            gradientDType: .float32)
        let gotGradients = try gpu.backward(
            query: query, key: key, value: value, forward: want, outputGradient: outputGradient, options: options,
            gradientDType: .float32)
        let tolerance: Float = testCase.dtype == .float32 ? 1e-4 : testCase.dtype == .float16 ? 5e-3 : 2e-2
        var outputs = [("dQ", gotGradients.query, wantGradients.query), ("dK", gotGradients.key, wantGradients.key),
                       ("dV", gotGradients.value, wantGradients.value)]
        for (name, table) in wantGradients.tableGradients {
            guard let gpuTable = gotGradients.tableGradients[name] else { return "no gradient for table \(name)" }
            outputs.append(("∂/∂\(name)", gpuTable, table))
        }
        for (name, gpuValues, cpuValues) in outputs {
            if let failure = compare(name, gpuValues.floats(), cpuValues.floats(), tolerance: tolerance) {
                return failure
            }
        }
        // Each case does what it says: NaN somewhere, or nowhere when the mask removes every poisoned row.
        let anyNaN = (outputs.map(\.2) + [want.output]).contains { $0.floats().contains { $0.isNaN } }
        return anyNaN != nonFiniteCase.masked ? nil : "the CPU gives \(anyNaN ? "" : "no ")NaN, the case says otherwise"
    }
}
