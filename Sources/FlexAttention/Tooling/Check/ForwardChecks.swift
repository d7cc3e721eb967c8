/// The GPU forward pass against the CPU's, `Attention(device: .cpu)`, with the same mods. 16-bit outputs to 16-bit
/// tolerances (P is rounded to the input dtype before P V, as in FlashAttention), LSE to 2e-3; Float32 (the
/// CUDA-core kernel, Float32 throughout like the CPU) both to 2e-5; rows that keep nothing must give O = 0 and
/// LSE = −∞ exactly. Cases with Float32 or head dims the tensor cores do not take run the CUDA-core kernel.
extension CUDAConformance {
    func forwardChecks() -> [Check] {
        let documents = (0..<200).map { $0 / 45 }
        var cases: [AttentionCase] = [
            AttentionCase(label: "fp16 D=64", dtype: .float16, shape: (1, 2, 2, 128, 128, 64, 64)),
            AttentionCase(label: "bf16 D=64", dtype: .bfloat16, shape: (2, 2, 2, 64, 192, 64, 64)),
            AttentionCase(label: "fp16 D=80 odd lengths", dtype: .float16, shape: (1, 2, 2, 77, 131, 80, 80)),
            AttentionCase(label: "bf16 D=80 odd lengths", dtype: .bfloat16, shape: (1, 3, 3, 129, 65, 80, 80)),
            AttentionCase(label: "fp16 D=128 causal", dtype: .float16, shape: (1, 2, 2, 200, 200, 128, 128),
                        options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=128 causal", dtype: .bfloat16, shape: (2, 1, 1, 150, 150, 128, 128),
                        options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=128 Dv=64 GQA 4:2 causal Sq<Skv", dtype: .float16,
                        shape: (1, 4, 2, 130, 257, 128, 64), options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=64 GQA 6:2 BSHD", dtype: .bfloat16, shape: (2, 6, 2, 100, 100, 64, 64), layout: .bshd),
            AttentionCase(label: "bf16 D=64 sliding window 40, BSHD", dtype: .bfloat16, shape: (1, 2, 1, 190, 190, 64, 64),
                        layout: .bshd, options: .init(mask: .slidingWindow(40))),
            AttentionCase(label: "fp16 D=128 soft-cap 20, causal", dtype: .float16, shape: (1, 2, 2, 140, 140, 128, 128),
                        options: .init(isCausal: true, scoreMod: .softCap(20))),
            AttentionCase(label: "bf16 D=80 soft-cap 5", dtype: .bfloat16, shape: (1, 2, 2, 70, 90, 80, 80),
                        options: .init(scoreMod: .softCap(5))),
            AttentionCase(label: "fp16 D=64 bottom-right causal Sq>Skv (empty rows)", dtype: .float16,
                        shape: (1, 2, 2, 100, 37, 64, 64), options: .init(mask: .causalBottomRight)),
        ]
        cases += longWalks.map { AttentionCase(label: $0.label, dtype: $0.dtype, shape: $0.shape, options: $0.options) }
        // Bands of heads in the Hopper kernel's tile order, on an H100 SXM (50 MB of L2, 132 SMs): 20 heads of 1 MB of
        // K and V in bands of 3 then 17, persistent (up to 2048 keys); 12 K/V heads of 1.5 MB shared in pairs, in
        // bands of 2 then 22 query heads, a CTA per tile.
        cases.append(AttentionCase(label: "bf16 D=128 H=20 S=2048 causal (bands of heads)", dtype: .bfloat16,
                                   shape: (1, 20, 20, 2048, 2048, 128, 128), options: .init(isCausal: true)))
        cases.append(AttentionCase(label: "bf16 D=128 GQA 24:12 S=3000 causal (a CTA per tile, bands of heads)",
                                   dtype: .bfloat16, shape: (1, 24, 12, 3000, 3000, 128, 128), options: .init(isCausal: true)))
        // A scale ≤ 0 takes the Hopper kernel that scales scores before the softmax (the others fold it in).
        cases.append(AttentionCase(label: "bf16 D=128 scale -0.05, causal", dtype: .bfloat16,
                                   shape: (1, 2, 2, 300, 300, 128, 128), options: .init(scale: -0.05, isCausal: true)))
        cases += [
            AttentionCase(label: "fp16 D=16 Dv=32", dtype: .float16, shape: (1, 1, 1, 33, 47, 16, 32)),
            AttentionCase(label: "bf16 D=96 Sq>Skv", dtype: .bfloat16, shape: (1, 3, 3, 129, 65, 96, 96)),
            AttentionCase(label: "fp16 D=192 MQA", dtype: .float16, shape: (1, 2, 1, 90, 70, 192, 192)),
            AttentionCase(label: "bf16 D=256 causal", dtype: .bfloat16, shape: (1, 2, 2, 100, 100, 256, 256),
                        options: .init(isCausal: true)),
            AttentionCase(label: "fp32 D=64 odd lengths", dtype: .float32, shape: (1, 2, 2, 100, 130, 64, 64)),
            AttentionCase(label: "fp32 D=64 soft-cap 20, causal", dtype: .float32, shape: (1, 2, 2, 140, 140, 64, 64),
                        options: .init(isCausal: true, scoreMod: .softCap(20))),
            AttentionCase(label: "fp32 D=40 bottom-right causal Sq>Skv (empty rows)", dtype: .float32,
                        shape: (1, 2, 2, 100, 37, 40, 40), options: .init(mask: .causalBottomRight)),
            AttentionCase(label: "fp16 D=72 causal", dtype: .float16, shape: (1, 2, 2, 77, 131, 72, 72),
                        options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=8 Dv=24 GQA 2:1 BSHD", dtype: .bfloat16, shape: (2, 2, 1, 65, 90, 8, 24),
                        layout: .bshd),
            AttentionCase(label: "fp32 D=192 GQA 4:2 causal Sq<Skv", dtype: .float32, shape: (1, 4, 2, 130, 257, 192, 192),
                        options: .init(isCausal: true)),
        ]
        if let document = try? MaskMod.document(ids: documents), let alibi = try? ScoreMod.alibi(heads: 4) {
            cases.append(AttentionCase(label: "bf16 D=128 document mask + ALiBi", dtype: .bfloat16,
                                     shape: (1, 4, 4, 200, 200, 128, 128), options: .init(mask: document, scoreMod: alibi)))
            cases.append(AttentionCase(label: "fp32 D=48 document mask + ALiBi, BSHD", dtype: .float32,
                                     shape: (1, 4, 4, 200, 200, 48, 48), layout: .bshd,
                                     options: .init(mask: document, scoreMod: alibi)))
        }
        return cases.map { testCase in ("forward: \(testCase.label)", { try self.forward(testCase, &$0) }) }
    }

    private func forward(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> String? {
        let s = testCase.shape
        let tensors = try inputs(testCase, &random)
        let (query, key, value) = (tensors[0], tensors[1], tensors[2])
        let options = testCase.options
        let gpu = try gpuForward(query: query, key: key, value: value, options: options)
        let cpu = try Attention(device: .cpu).forward(
            query: query, key: key, value: value, options: options, outputDType: .float32)
        let (output, logSumExp) = (cpu.output.floats(), cpu.logSumExp.floats())
        let (tolerance, logSumExpTolerance): (Float, Float) = switch testCase.dtype {
        case .float32: (2e-5, 2e-5)
        case .float16: (4e-3, 2e-3)
        case .bfloat16: (2e-2, 2e-3)
        }
        for (index, (got, want)) in zip(gpu.output.floats(), output).enumerated()
        where !(abs(got - want) <= tolerance * max(1, abs(want))) {
            let row = index / s.dv
            return "O at [\(row / s.sq / s.hq), \(row / s.sq % s.hq), \(row % s.sq), \(index % s.dv)]: GPU \(got), CPU \(want)"
        }
        for (index, (got, want)) in zip(gpu.logSumExp.floats(), logSumExp).enumerated()
        where !(got == want || abs(got - want) <= logSumExpTolerance * max(1, abs(want))) {
            return "LSE at row \(index): GPU \(got), CPU \(want)"
        }
        return nil
    }
}
