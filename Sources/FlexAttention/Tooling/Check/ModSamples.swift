/// The mods the CUDA emitter is checked and compiled with: every built-in, text that reaches every operator
/// (negative and zero Int divisors, Float `%`, every function), and random compositions of those.
enum ModSamples {
    /// Sequence lengths up to which the tables of the samples are sized.
    static let length = 160

    static func masks() throws -> [(label: String, mask: MaskMod)] {
        let ids = (0..<length).map { $0 / 37 }
        return [
            ("causal", .causal), ("causal_bottom_right", .causalBottomRight), ("sliding_window", .slidingWindow(48)),
            ("symmetric_window", .symmetricWindow(radius: 20)), ("chunked", .chunked(32)),
            ("prefix_lm", .prefixLM(length: 16)), ("prefix_lm_per_batch", try .prefixLM(lengths: [5, 70])),
            ("document", try .document(ids: ids)), ("document_causal", try .documentCausal(ids: ids)),
            ("dilated_window", .dilatedWindow(size: 8, dilation: 3)),
            ("floor_division", try MaskMod(parsing: "(q - kv) / -3 == (kv - q) % 5 - 2 || q / (kv % 3) > 4 || -q % 7 == 3")),
            ("min_max_clamp", try MaskMod(parsing: "where(q > kv, min(q, 40) >= max(kv, 10), clamp(q - kv, -4, 4) == abs(q - kv) % 4)")),
            ("parameter", try MaskMod(parsing: "q - kv < w && !(b == 1 && h != 0)", parameters: ["w": .int(29)])),
        ]
    }

    static func scoreMods() throws -> [(label: String, scoreMod: ScoreMod)] {
        let bias = (0..<3 * 17).map { Float($0 % 11) * 0.25 - 1 }
        return [
            ("alibi", try .alibi(heads: 3)), ("soft_cap", .softCap(20)),
            ("relative_position_bias", try .relativePositionBias(bias, heads: 3, maxDistance: 8)),
            // sqrt(abs(score) + 0.25), not sqrt(abs(score)): composed after a mod that yields an exact 0 (index
            // arithmetic at q = kv = 0), an infinite slope times a zero one is NaN, and whether that NaN reaches dQ
            // then hangs on the last bit of dP − Delta (CPU and GPU round those differently).
            ("transcendental", try ScoreMod(parsing: "where(score > 0.0, exp(score / 8.0), log(abs(score) + 1.0)) - sqrt(abs(score) + 0.25)")),
            ("float_remainder", try ScoreMod(parsing: "min(score, 2.5) * max(score, -1.5) + clamp(score, -3.0, 3.0) % 1.75")),
            ("index_arithmetic", try ScoreMod(parsing: "score * float(q % 7 - kv / 3) / 16.0 + float(-(q - kv)) * 0.01")),
        ]
    }

    /// `count` random masks and score mods built from the samples with `&&`, `||`, `!` and ``ScoreMod/then(_:)``.
    static func compositions<Generator: RandomNumberGenerator>(
        count: Int, using generator: inout Generator
    ) throws -> (masks: [(label: String, mask: MaskMod)], scoreMods: [(label: String, scoreMod: ScoreMod)]) {
        let masks = try masks(), scores = try scoreMods()
        var composedMasks: [(String, MaskMod)] = []
        var composedScores: [(String, ScoreMod)] = []
        for index in 0..<count {
            let (x, y) = (masks.randomElement(using: &generator), masks.randomElement(using: &generator))
            let (s, t) = (scores.randomElement(using: &generator), scores.randomElement(using: &generator))
            guard let x, let y, let s, let t else { break }
            let mask = switch index % 3 {
            case 0: x.mask && y.mask
            case 1: x.mask || !y.mask
            default: !(x.mask && !y.mask)
            }
            composedMasks.append(("composed_\(index)", mask))
            composedScores.append(("composed_\(index)", s.scoreMod.then(t.scoreMod)))
        }
        return (composedMasks, composedScores)
    }

    /// Grid kernels for every sample and `count` random compositions.
    static func gridKernels<Generator: RandomNumberGenerator>(
        compositions count: Int, using generator: inout Generator
    ) throws -> [ModGridKernel] {
        let composed = try compositions(count: count, using: &generator)
        return try (masks() + composed.masks).map { ModGridKernel(mask: $0.mask, label: $0.label) }
            + (scoreMods() + composed.scoreMods).map { ModGridKernel(scoreMod: $0.scoreMod, label: $0.label) }
    }
}
