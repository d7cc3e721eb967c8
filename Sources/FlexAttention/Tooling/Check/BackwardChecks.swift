/// The GPU backward pass against the CPU's, both given the same forward result (the CPU's) and the same dO.
/// Gradients are compared by ‖GPU − CPU‖ / ‖CPU‖: P and dS are rounded to the input dtype before their MMAs on the
/// GPU (as in FlashAttention), so fp16 allows 5e-3 and bf16 2e-2; Float32 runs in Float32 throughout and allows
/// 1e-4. Table gradients get twice that.
extension CUDAConformance {
    func backwardChecks() -> [Check] {
        let documents = (0..<200).map { $0 / 45 }
        let bias = (0..<2 * 41).map { Float($0 % 13) * 0.2 - 1.2 }
        var cases: [AttentionCase] = [
            AttentionCase(label: "fp16 D=64", dtype: .float16, shape: (1, 2, 2, 128, 128, 64, 64)),
            AttentionCase(label: "bf16 D=64 Sq<Skv", dtype: .bfloat16, shape: (2, 2, 2, 64, 192, 64, 64)),
            AttentionCase(label: "fp16 D=80 odd lengths", dtype: .float16, shape: (1, 2, 2, 77, 131, 80, 80)),
            AttentionCase(label: "bf16 D=96 Sq>Skv", dtype: .bfloat16, shape: (1, 3, 3, 129, 65, 96, 96)),
            AttentionCase(label: "bf16 D=128 causal", dtype: .bfloat16, shape: (2, 1, 1, 150, 150, 128, 128),
                          options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=128 Dv=64 GQA 4:2 causal Sq<Skv", dtype: .float16,
                          shape: (1, 4, 2, 130, 257, 128, 64), options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=64 MQA 6:1 BSHD", dtype: .bfloat16, shape: (2, 6, 1, 100, 100, 64, 64), layout: .bshd),
            AttentionCase(label: "fp16 D=192", dtype: .float16, shape: (1, 2, 1, 90, 70, 192, 192)),
            AttentionCase(label: "bf16 D=256 causal", dtype: .bfloat16, shape: (1, 2, 2, 100, 100, 256, 256),
                          options: .init(isCausal: true)),
            // Dense at D > 128: rotated walks (4 key blocks over 5 query blocks, two query heads per CTA), and
            // unrotated where the key blocks outnumber the query blocks.
            AttentionCase(label: "bf16 D=256 GQA 4:2 Sq>Skv (rotated walks)", dtype: .bfloat16, shape: (1, 4, 2, 300, 200, 256, 256)),
            AttentionCase(label: "fp16 D=256 Dv=208 Sq<Skv", dtype: .float16, shape: (2, 2, 2, 130, 260, 256, 208)),
            AttentionCase(label: "fp16 D=16 Dv=32", dtype: .float16, shape: (1, 1, 1, 33, 47, 16, 32)),
            AttentionCase(label: "bf16 D=64 sliding window 40, BSHD", dtype: .bfloat16, shape: (1, 2, 1, 190, 190, 64, 64),
                          layout: .bshd, options: .init(mask: .slidingWindow(40))),
            AttentionCase(label: "fp16 D=128 soft-cap 20, causal", dtype: .float16, shape: (1, 2, 2, 140, 140, 128, 128),
                          options: .init(isCausal: true, scoreMod: .softCap(20))),
            AttentionCase(label: "fp16 D=64 bottom-right causal Sq>Skv (empty rows)", dtype: .float16,
                          shape: (1, 2, 2, 100, 37, 64, 64), options: .init(mask: .causalBottomRight)),
        ] + longWalks
        if let document = try? MaskMod.document(ids: documents), let alibi = try? ScoreMod.alibi(heads: 4),
           let relative = try? ScoreMod.relativePositionBias(bias, heads: 2, maxDistance: 20) {
            cases.append(AttentionCase(label: "bf16 D=128 document mask + ALiBi (slope gradients)", dtype: .bfloat16,
                                       shape: (1, 4, 4, 200, 200, 128, 128), options: .init(mask: document, scoreMod: alibi)))
            cases.append(AttentionCase(label: "fp16 D=64 relative position bias (table gradients), causal",
                                       dtype: .float16, shape: (2, 2, 2, 150, 150, 64, 64),
                                       options: .init(isCausal: true, scoreMod: relative)))
            cases.append(AttentionCase(label: "fp32 D=48 document mask + ALiBi, BSHD (CUDA cores)", dtype: .float32,
                                       shape: (1, 4, 2, 200, 200, 48, 48), layout: .bshd,
                                       options: .init(mask: document, scoreMod: alibi)))
            cases.append(AttentionCase(label: "fp32 D=64 relative position bias (CUDA cores)", dtype: .float32,
                                       shape: (2, 2, 2, 150, 150, 64, 64), options: .init(isCausal: true, scoreMod: relative)))
        }
        cases += [
            AttentionCase(label: "fp32 D=64 odd lengths (CUDA cores)", dtype: .float32, shape: (1, 2, 2, 77, 131, 64, 64)),
            AttentionCase(label: "fp32 D=64 soft-cap, causal (CUDA cores)", dtype: .float32, shape: (2, 2, 1, 100, 100, 64, 64),
                          options: .init(isCausal: true, scoreMod: .softCap(20))),
            AttentionCase(label: "fp32 D=40 bottom-right causal Sq>Skv (CUDA cores)", dtype: .float32,
                          shape: (1, 2, 2, 90, 41, 40, 40), options: .init(mask: .causalBottomRight)),
            AttentionCase(label: "fp16 D=72 causal (CUDA cores)", dtype: .float16, shape: (1, 2, 2, 100, 100, 72, 72),
                          options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=8 Dv=24 GQA 4:2 BSHD (CUDA cores)", dtype: .bfloat16, shape: (2, 4, 2, 70, 90, 8, 24),
                          layout: .bshd),
            AttentionCase(label: "fp32 D=192 GQA 4:2 causal Sq<Skv (CUDA cores)", dtype: .float32,
                          shape: (1, 4, 2, 60, 130, 192, 192), options: .init(isCausal: true)),
        ]
        cases += anyOrderCases(alibi: try? ScoreMod.alibi(heads: 4), documents: try? MaskMod.document(ids: documents))
        return cases.map { testCase in ("backward: \(testCase.label)", { try self.backward(testCase, &$0) }) }
            + [("backward: the same bits on a second run, ALiBi and relative-bias table gradients included",
                { try self.determinism(deterministicGradients: true, &$0) }),
               ("backward, dQ in any order: dK, dV and the table gradients have the same bits on a second run",
                { try self.determinism(deterministicGradients: false, &$0) })]
    }

    /// Cases with ``AttentionOptions/deterministicGradients`` false: the wide Hopper backward, padded and not, with
    /// causal walks launched longest first, more CTAs than SMs in bands, GQA, a block list and table gradients; and
    /// the kernels where the option changes nothing (D = 128 on a Hopper, CUDA cores).
    private func anyOrderCases(alibi: ScoreMod?, documents: MaskMod?) -> [AttentionCase] {
        var cases = [
            AttentionCase(label: "bf16 D=256 causal S=600", dtype: .bfloat16, shape: (1, 1, 1, 600, 600, 256, 256),
                          options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=192 GQA 8:2 B=3 S=900 causal (more CTAs than SMs)", dtype: .bfloat16,
                          shape: (3, 8, 2, 900, 900, 192, 192), options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=256 Dv=208 Sq<Skv", dtype: .float16, shape: (2, 2, 2, 130, 260, 256, 208)),
            AttentionCase(label: "bf16 D=128 causal", dtype: .bfloat16, shape: (2, 1, 1, 150, 150, 128, 128),
                          options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=72 causal (CUDA cores)", dtype: .float16, shape: (1, 2, 2, 100, 100, 72, 72),
                          options: .init(isCausal: true)),
        ]
        if let alibi, let documents {
            cases.append(AttentionCase(label: "bf16 D=256 document mask + ALiBi (slope gradients)", dtype: .bfloat16,
                                       shape: (1, 4, 4, 200, 200, 256, 256), options: .init(mask: documents, scoreMod: alibi)))
        }
        return cases.map { testCase in
            var anyOrder = testCase
            anyOrder.label += ", dQ in any order"
            anyOrder.options.deterministicGradients = false
            return anyOrder
        }
    }

    func backward(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> String? {
        let tensors = try inputs(testCase, &random)
        let (query, key, value, outputGradient) = (tensors[0], tensors[1], tensors[2], tensors[3])
        let cpu = Attention(device: .cpu)
        let forward = try cpu.forward(query: query, key: key, value: value, options: testCase.options)
        let want = try cpu.backward(
            query: query, key: key, value: value, forward: forward, outputGradient: outputGradient,
            options: testCase.options, gradientDType: .float32)
        let got = try gpuBackward(
            query: query, key: key, value: value, forward: forward, outputGradient: outputGradient, options: testCase.options)
        let tolerance: Float = switch testCase.dtype {
        case .float32: 1e-4
        case .float16: 5e-3
        case .bfloat16: 2e-2
        }
        for (name, gpu, reference) in [("dQ", got.query, want.query), ("dK", got.key, want.key), ("dV", got.value, want.value)] {
            if let failure = compare(name, gpu.floats(), reference.floats(), tolerance: tolerance) { return failure }
        }
        guard got.tableGradients.keys.sorted() == want.tableGradients.keys.sorted() else {
            return "table gradients for \(got.tableGradients.keys.sorted()), expected \(want.tableGradients.keys.sorted())"
        }
        for (name, reference) in want.tableGradients {
            guard let gpu = got.tableGradients[name] else { continue }
            if let failure = compare("∂/∂\(name)", gpu.floats(), reference.floats(), tolerance: 2 * tolerance) { return failure }
        }
        return nil
    }

    /// ‖got − want‖ / ‖want‖ over the finite values within `tolerance`, and the others alike (NaN where the CPU has
    /// NaN, as where a mod's derivative is undefined; the same infinity).
    func compare(_ name: String, _ got: [Float], _ want: [Float], tolerance: Float) -> String? {
        guard got.count == want.count else { return "\(name): \(got.count) values, expected \(want.count)" }
        var difference = 0.0, norm = 0.0
        for (index, (x, y)) in zip(got, want).enumerated() {
            guard x.isFinite && y.isFinite else {
                if (x.isNaN && y.isNaN) || x == y { continue }
                return "\(name)[\(index)]: GPU \(x), CPU \(y)"
            }
            difference += Double(x - y) * Double(x - y)
            norm += Double(y) * Double(y)
        }
        let error = norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
        return error <= Double(tolerance) ? nil : "\(name): relative error \(error) > \(tolerance)"
    }

    /// dQ, dK and dV are summed in a fixed order and table gradients in fixed point: a second run gives the same
    /// bits. The relative bias changes element with every score, so its sums come from many CTAs in any order.
    /// Without `deterministicGradients` (at D = 256, where a Hopper then adds dQ in any order) only dQ may differ.
    private func determinism(deterministicGradients: Bool, _ random: inout SplitMix64) throws -> String? {
        let bias = (0..<4 * 63).map { _ in Float(random.next() % 1000) / 1000 - 0.5 }
        let scoreMod = try ScoreMod.alibi(heads: 4).then(.relativePositionBias(bias, heads: 4, maxDistance: 31))
        let headDim = deterministicGradients ? 64 : 256
        let testCase = AttentionCase(
            label: "", dtype: .bfloat16, shape: (1, 4, 2, 300, 300, headDim, headDim),
            options: .init(isCausal: true, scoreMod: scoreMod, deterministicGradients: deterministicGradients))
        let tensors = try inputs(testCase, &random)
        let forward = try Attention(device: .cpu).forward(
            query: tensors[0], key: tensors[1], value: tensors[2], options: testCase.options)
        let runs = try (0..<2).map { _ in
            try gpuBackward(
                query: tensors[0], key: tensors[1], value: tensors[2], forward: forward, outputGradient: tensors[3],
                options: testCase.options)
        }
        let bits = runs.map { run in
            ((deterministicGradients ? [run.query] : []) + [run.key, run.value]
                + run.tableGradients.keys.sorted().compactMap { run.tableGradients[$0] })
                .flatMap { (tensor: Tensor) in tensor.floats().map(\.bitPattern) }
        }
        guard runs[0].tableGradients.count == 2 else { return "expected two table gradients" }
        return bits[0] == bits[1] ? nil : "two runs differ"
    }
}
