import FlexAttention

/// `flexattn bench --mods`: what masks and score mods cost on the CPU. Each mod is timed beside the same attention
/// without it (B=1, H=8, D=64, Float32), the two alternating pass by pass so that a slow moment of a shared machine
/// slows both: costs are medians of the per-round ratios. Then block-mask construction at long lengths.
struct ModsBenchmark {
    let attention: Attention
    let heads = 8, headDim = 64

    struct Comparison {
        let name: String, baselineName: String, sequence: Int
        let forward: Alternation.Medians, backward: Alternation.Medians
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

    /// Sliding window 256 at S=32768 against dense causal attention at S=4096, alternating: GFLOP/s over the kept
    /// 64×64 blocks (half the scores for causal) and the median ratio of the two rates.
    func slidingWindow() throws -> WindowRates {
        let (n, causalLength) = (32768, 4096)
        let mask = MaskMod.slidingWindow(256)
        let blocks = try BlockMask(mask, queryLength: n, keyLength: n, queryBlockSize: 64, keyBlockSize: 64)
        let kept = blocks.keptBlockCounts
        let keptElements = Double((kept.full + kept.partial) * 64 * 64)
        let timed = try alternate(
            PreparedRun(attention, MaskOptions(AttentionOptions(mask: mask)), sequence: n, heads: heads, headDim: headDim),
            PreparedRun(attention, MaskOptions(AttentionOptions(isCausal: true)), sequence: causalLength, heads: heads,
                        headDim: headDim))
        let flop = 4 * Double(heads * headDim) * keptElements
        let causalFlop = 4 * Double(heads * headDim) * Double(causalLength * causalLength) / 2
        func rates(_ medians: Alternation.Medians, factor: Double) -> (window: Double, causal: Double, ratio: Double) {
            (factor * flop / medians.first / 1e9, factor * causalFlop / medians.second / 1e9,
             medians.ratio.map { flop / causalFlop / $0 } ?? 0)
        }
        return WindowRates(
            forward: rates(timed.forward, factor: 1), backward: rates(timed.backward, factor: 2.5),
            keptFraction: keptElements / Double(n * n))
    }

    struct WindowRates {
        let forward: (window: Double, causal: Double, ratio: Double)
        let backward: (window: Double, causal: Double, ratio: Double)
        let keptFraction: Double
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
        let timed = try alternate(
            PreparedRun(attention, mod, sequence: sequence, heads: heads, headDim: headDim),
            PreparedRun(attention, baseline, sequence: sequence, heads: heads, headDim: headDim))
        return Comparison(
            name: name, baselineName: baselineName, sequence: sequence, forward: timed.forward, backward: timed.backward)
    }

    func render(_ comparisons: [Comparison], window: WindowRates, blockMasks: [BlockMaskRow]) -> String {
        var lines = [
            "flexattn bench --mods: \(attention.device), \(InstructionSet.current) kernels, B=1 H=\(heads) D=\(headDim)"
                + " Float32",
            "mod                        S   fwd ms   bwd ms  beside               fwd ms   bwd ms  fwd cost  bwd cost",
        ]
        for row in comparisons {
            lines.append(
                row.name.padding(22) + pad(row.sequence, 6) + pad(fixed(row.forward.first * 1e3, 1), 9)
                    + pad(fixed(row.backward.first * 1e3, 1), 9) + "  " + row.baselineName.padding(18)
                    + pad(fixed(row.forward.second * 1e3, 1), 9) + pad(fixed(row.backward.second * 1e3, 1), 9)
                    + pad(percent(row.forward.ratio.map { $0 - 1 } ?? 0), 10)
                    + pad(percent(row.backward.ratio.map { $0 - 1 } ?? 0), 10))
        }
        lines.append("")
        lines.append(
            "sliding window 256, S=32768 (\(fixed(window.keptFraction * 100, 2))% kept) beside dense causal at S=4096,"
                + " GFLOP/s over kept blocks: fwd \(fixed(window.forward.window, 1)) vs \(fixed(window.forward.causal, 1)),"
                + " bwd \(fixed(window.backward.window, 1)) vs \(fixed(window.backward.causal, 1))"
                + " → \(percent(window.forward.ratio)) / \(percent(window.backward.ratio))")
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
