import FlexAttention

/// `flexattn bench --mods`: what masks and score mods cost on the CPU. Each mod is timed beside the same attention
/// without it, in the same run (B=1, H=8, D=64, Float32); then block-mask construction at long lengths.
struct ModsBenchmark {
    let attention: Attention
    let heads = 8, headDim = 64

    struct Comparison {
        let name: String, baselineName: String, sequence: Int
        let forward: Double, backward: Double, baselineForward: Double, baselineBackward: Double
    }

    struct BlockMaskRow {
        let name: String, sequence: Int, keptBlocks: Int, totalBlocks: Int, seconds: Double, extraBytes: Int
    }

    func comparisons(progress: (String) -> Void) throws -> [Comparison] {
        let n = 4096
        let documents = 16
        let ids = (0..<n).map { $0 / (n / documents) }
        progress("causal as a mask")
        let causal = try compare(
            "causal as a mask", MaskOptions(AttentionOptions(mask: .causal)),
            against: "built-in causal", MaskOptions(AttentionOptions(isCausal: true)), sequence: n)
        progress("soft-capping")
        let softCap = try compare(
            "tanh soft-cap 30", MaskOptions(AttentionOptions(scoreMod: .softCap(30))),
            against: "no score mod", MaskOptions(AttentionOptions()), sequence: n)
        progress("document mask")
        let document = try compare(
            "\(documents) documents (mask)", MaskOptions(AttentionOptions(mask: try .document(ids: ids))),
            against: "\(documents) dense calls", MaskOptions(AttentionOptions(), pieces: documents), sequence: n)
        return [causal, softCap, document]
    }

    /// Sliding window 256 at S=32768: GFLOP/s over the kept 64×64 blocks.
    func slidingWindow() throws -> (forward: Double, backward: Double, keptFraction: Double) {
        let n = 32768
        let mask = MaskMod.slidingWindow(256)
        let blocks = try BlockMask(mask, queryLength: n, keyLength: n, queryBlockSize: 64, keyBlockSize: 64)
        let kept = blocks.keptBlockCounts
        let keptElements = Double((kept.full + kept.partial) * 64 * 64)
        let (forward, backward) = try time(MaskOptions(AttentionOptions(mask: mask)), sequence: n)
        let flop = 4 * Double(heads * headDim) * keptElements
        return (flop / forward / 1e9, 2.5 * flop / backward / 1e9, keptElements / Double(n * n))
    }

    func blockMasks() throws -> [BlockMaskRow] {
        var rows: [BlockMaskRow] = []
        rows.append(try buildBlockMask("causal", .causal, sequence: 131_072))
        for documents in [16, 64, 256] {
            let n = 65536
            let ids = (0..<n).map { $0 * documents / n }
            rows.append(try buildBlockMask("\(documents) documents", try .document(ids: ids), sequence: n))
        }
        return rows
    }

    private func buildBlockMask(_ name: String, _ mask: MaskMod, sequence n: Int) throws -> BlockMaskRow {
        var built = try BlockMask(mask, queryLength: n, keyLength: n)
        let before = PeakMemory.resetAndRead()
        built = try BlockMask(mask, queryLength: n, keyLength: n)
        let extra = max(0, PeakMemory.resetAndRead() - before)
        let seconds = try medianSeconds { built = try BlockMask(mask, queryLength: n, keyLength: n) }
        let kept = built.keptBlockCounts
        return BlockMaskRow(
            name: name, sequence: n, keptBlocks: kept.full + kept.partial,
            totalBlocks: built.queryBlockCount * built.keyBlockCount, seconds: seconds, extraBytes: extra)
    }

    /// Options, run either on the whole sequence or on `pieces` equal consecutive parts, each attending only to
    /// itself (separate calls: the same kept blocks as a document mask, with no mask to evaluate).
    struct MaskOptions {
        let options: AttentionOptions
        var pieces = 1
        init(_ options: AttentionOptions, pieces: Int = 1) {
            self.options = options
            self.pieces = pieces
        }
    }

    private func compare(
        _ name: String, _ mod: MaskOptions, against baselineName: String, _ baseline: MaskOptions, sequence: Int
    ) throws -> Comparison {
        let timed = try time(mod, sequence: sequence)
        let reference = try time(baseline, sequence: sequence)
        return Comparison(
            name: name, baselineName: baselineName, sequence: sequence, forward: timed.forward,
            backward: timed.backward, baselineForward: reference.forward, baselineBackward: reference.backward)
    }

    /// Median forward and backward seconds.
    private func time(_ run: MaskOptions, sequence: Int) throws -> (forward: Double, backward: Double) {
        let length = sequence / run.pieces
        let shape = [1, heads, length, headDim]
        let inputs = try (0..<run.pieces).map { _ in
            try (q: randomTensor(shape), k: randomTensor(shape), v: randomTensor(shape), dO: randomTensor(shape))
        }
        var outputs = try inputs.map {
            try attention.forward(query: $0.q, key: $0.k, value: $0.v, options: run.options)
        }
        let forward = try medianSeconds {
            outputs = try inputs.map {
                try attention.forward(query: $0.q, key: $0.k, value: $0.v, options: run.options)
            }
        }
        let backward = try medianSeconds {
            for (input, output) in zip(inputs, outputs) {
                _ = try attention.backward(
                    query: input.q, key: input.k, value: input.v, forward: output, outputGradient: input.dO,
                    options: run.options)
            }
        }
        return (forward, backward)
    }

    func render(
        _ comparisons: [Comparison], window: (forward: Double, backward: Double, keptFraction: Double),
        causalRate: (forward: Double, backward: Double), blockMasks: [BlockMaskRow]
    ) -> String {
        var lines = [
            "flexattn bench --mods: \(attention.device), \(InstructionSet.current) kernels, B=1 H=\(heads) D=\(headDim)"
                + " Float32",
            "mod                        S   fwd ms   bwd ms  beside               fwd ms   bwd ms  fwd cost  bwd cost",
        ]
        for row in comparisons {
            lines.append(
                row.name.padding(22) + pad(row.sequence, 6) + pad(fixed(row.forward * 1e3, 1), 9)
                    + pad(fixed(row.backward * 1e3, 1), 9) + "  " + row.baselineName.padding(18)
                    + pad(fixed(row.baselineForward * 1e3, 1), 9) + pad(fixed(row.baselineBackward * 1e3, 1), 9)
                    + pad(percent(row.forward / row.baselineForward - 1), 10)
                    + pad(percent(row.backward / row.baselineBackward - 1), 10))
        }
        lines.append("")
        lines.append(
            "sliding window 256, S=32768 (\(fixed(window.keptFraction * 100, 2))% kept): GFLOP/s over kept blocks"
                + " fwd \(fixed(window.forward, 1)), bwd \(fixed(window.backward, 1)); dense causal at S=4096:"
                + " fwd \(fixed(causalRate.forward, 1)), bwd \(fixed(causalRate.backward, 1))"
                + " → \(percent(window.forward / causalRate.forward)) / \(percent(window.backward / causalRate.backward))")
        lines.append("")
        lines.append("block mask (128×128 blocks)        S    kept / all blocks   build ms   extra MiB")
        for row in blockMasks {
            lines.append(
                row.name.padding(24) + pad(row.sequence, 11) + pad("\(row.keptBlocks) / \(row.totalBlocks)", 20)
                    + pad(fixed(row.seconds * 1e3, 2), 11) + pad(fixed(Double(row.extraBytes) / 1_048_576, 1), 12))
        }
        return lines.joined(separator: "\n")
    }
}

private func percent(_ fraction: Double) -> String { "\(fixed(fraction * 100, 1))%" }

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
