import Testing
@testable import FlexAttention

/// Captured Swift `Int` and `Float` values mix with traced ones, and trace to the same mod as the explicit
/// `ModInt(…)` / `ModFloat(…)` spelling: the same structure (one compiled kernel) and the values as arguments.
@Suite("Captured values in mods")
struct ModsPlainValueTests {
    @Test("a captured Int in a mask traces like ModInt(window), on either side of an operator")
    func capturedInt() throws {
        for window in [Int.random(in: 1...300), Int.random(in: 301...5000)] {
            let captured = MaskMod { _, _, q, kv in q - kv < window && q >= kv && 0 <= kv % (window + 1) }
            let explicit = MaskMod { _, _, q, kv in
                q - kv < ModInt(window) && q >= kv && ModInt(0) <= kv % ModInt(window + 1)
            }
            #expect(captured == explicit)
            #expect(captured.expression.arguments.scalars.contains(.int(window)))
        }
        let small = MaskMod { _, _, q, kv in q - kv < 7 * Int(3) }
        let large = MaskMod { _, _, q, kv in q - kv < 9 * Int(5) }
        #expect(small.expression.structuralKey == large.expression.structuralKey)
        #expect(small.expression.arguments != large.expression.arguments)
    }

    @Test("a captured Float in a score mod traces like ModFloat(cap), and computes the same attention")
    func capturedFloat() throws {
        let cap = Float.random(in: 5...50)
        let captured = ScoreMod { score, _, _, _, _ in cap * tanh(score / cap) }
        let explicit = ScoreMod { score, _, _, _, _ in ModFloat(cap) * tanh(score / ModFloat(cap)) }
        #expect(captured == explicit)
        let shift: Float = -0.25
        let comparing = ScoreMod { score, _, _, q, kv in select(shift < score, score - shift, score + 1.5 * float(q - kv)) }
        #expect(comparing.expression.arguments.scalars.contains(.float(shift)))

        var generator = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
        let shape = [1, 2, 37, 24]
        let tensors = try (0..<3).map { _ in
            try Tensor((0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &generator) }, shape: shape)
        }
        let attention = Attention()
        let got = try attention.forward(
            query: tensors[0], key: tensors[1], value: tensors[2], options: .init(scoreMod: captured))
        let want = try attention.forward(
            query: tensors[0], key: tensors[1], value: tensors[2], options: .init(scoreMod: explicit))
        #expect(got.output.floats() == want.output.floats())
    }

    @Test("captured numbers in min, max and clamp, and document ids of any integer type")
    func capturedInFunctions() throws {
        let distance = Int.random(in: 1...40)
        let cap = Float.random(in: 1...10)
        let captured = ScoreMod { score, _, _, q, kv in
            clamp(score, -cap, cap) + float(clamp(q - kv, -distance, distance) + min(q, distance) + max(distance, kv))
        }
        let explicit = ScoreMod { score, _, _, q, kv in
            clamp(score, ModFloat(-cap), ModFloat(cap))
                + float(clamp(q - kv, ModInt(-distance), ModInt(distance)) + min(q, ModInt(distance))
                    + max(ModInt(distance), kv))
        }
        #expect(captured == explicit)
        let ids: [Int32] = [0, 0, 1, 1, 1, 2]
        #expect(try MaskMod.document(ids: ids) == MaskMod.document(ids: ids.map(Int.init)))
    }
}
