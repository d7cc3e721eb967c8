import Foundation
import Testing
@testable import FlexAttention

@Suite struct ModsBuiltinTests {
    static let (queries, keys) = (37, 45)
    static let ids = (0..<45).map { $0 < 10 ? 0 : $0 < 11 ? 1 : $0 < 30 ? 2 : 3 }

    static let masks: [(MaskMod, String, @Sendable (Int, Int, Int) -> Bool)] = [
        (.causal, "q >= kv", { _, q, kv in q >= kv }),
        (.causalBottomRight, "q + kv_len - q_len >= kv", { _, q, kv in q + keys - queries >= kv }),
        (.slidingWindow(5), "q >= kv && q - kv < 5", { _, q, kv in q >= kv && q - kv < 5 }),
        (.symmetricWindow(radius: 3), "abs(q - kv) <= 3", { _, q, kv in Swift.abs(q - kv) <= 3 }),
        (.chunked(8), "q / 8 == kv / 8", { _, q, kv in q / 8 == kv / 8 }),
        (.prefixLM(length: 6), "kv < 6 || q >= kv", { _, q, kv in kv < 6 || q >= kv }),
        (try! .prefixLM(lengths: [3, 20]), "kv < prefix_len[b] || q >= kv", { b, q, kv in kv < [3, 20][b] || q >= kv }),
        (try! .document(ids: ids), "doc[q] == doc[kv]", { _, q, kv in ids[q] == ids[kv] }),
        (try! .document(offsets: [0, 10, 11, 30, 45]), "doc[q] == doc[kv]", { _, q, kv in ids[q] == ids[kv] }),
        (try! .documentCausal(ids: ids), "doc[q] == doc[kv] && q >= kv", { _, q, kv in ids[q] == ids[kv] && q >= kv }),
        (.dilatedWindow(size: 4, dilation: 3), "q >= kv && q - kv < 4 * 3 && (q - kv) % 3 == 0",
         { _, q, kv in q >= kv && q - kv < 12 && (q - kv) % 3 == 0 }),
    ]

    @Test("built-in masks match a direct evaluation", arguments: 0..<masks.count)
    func builtinMask(_ index: Int) throws {
        let (mask, text, direct) = Self.masks[index]
        #expect(mask.description == text)
        #expect(try MaskMod(parsing: text, tables: mask.expression.arguments.tables) == mask)
        for b in 0..<2 {
            let grid = TileGrid(batch: b, head: 1, queries: Self.queries, keys: Self.keys)
            let expected = (0..<Self.keys).flatMap { kv in (0..<Self.queries).map { direct(b, $0, kv) } }
            let actual = try grid.kept(mask)
            #expect(actual == expected, "\(text), b \(b): \(firstMismatch(actual, expected, queries: Self.queries) ?? "")")
        }
    }

    @Test func documentOffsetsMustIncrease() {
        #expect(throws: ModError.self) { try MaskMod.document(offsets: [0, 4, 4]) }
        #expect(throws: ModError.self) { try MaskMod.document(offsets: [1, 4]) }
    }

    static let heads = 4
    static let relativeBias = (0..<heads * 7).map { Float($0 % 5) * 0.25 - 0.5 }

    static let scoreMods: [(ScoreMod, String, @Sendable (Double, Int, Int, Int) -> Double)] = [
        (try! .alibi(heads: heads), "score + alibi_slope[h] * float(kv - q)",
         { s, h, q, kv in s + pow(2, -8 * Double(h + 1) / Double(heads)) * Double(kv - q) }),
        (.softCap(20), "20.0 * tanh(score / 20.0)", { s, _, _, _ in 20 * tanh(s / 20) }),
        (try! .relativePositionBias(relativeBias, heads: heads, maxDistance: 3),
         "score + rel_bias[h, clamp(q - kv, -3, 3) + 3]",
         { s, h, q, kv in s + Double(relativeBias[h * 7 + min(max(q - kv, -3), 3) + 3]) }),
    ]

    @Test("built-in score mods match a direct evaluation", arguments: 0..<scoreMods.count)
    func builtinScoreMod(_ index: Int) throws {
        let (mod, text, direct) = Self.scoreMods[index]
        #expect(mod.description == text)
        #expect(try ScoreMod(parsing: text, tables: mod.expression.arguments.tables) == mod)
        let evaluator = try ScoreModTileEvaluator(mod, queryLength: Self.queries, keyLength: Self.keys)
        let initial: (Int, Int) -> Float = { q, kv in Float((q * 7 + kv * 13) % 61) - 30 }
        for h in 0..<Self.heads {
            let grid = TileGrid(batch: 0, head: h, queries: Self.queries, keys: Self.keys)
            let actual = grid.run(initial: initial) { evaluator.modify($0, derivative: nil) }
            for kv in 0..<Self.keys {
                for q in 0..<Self.queries {
                    let expected = direct(Double(initial(q, kv)), h, q, kv)
                    let value = Double(actual[kv * Self.queries + q])
                    #expect(Swift.abs(value - expected) <= 1e-5 * max(1, Swift.abs(expected)), "\(text) at h \(h) q \(q) kv \(kv)")
                }
            }
        }
    }

    @Test func alibiSlopesAreStandard() throws {
        guard case .float(let slopes) = try ScoreMod.alibi(heads: 8).expression.arguments.tables[0].elements else {
            Issue.record("ALiBi slopes are not a Float table")
            return
        }
        #expect(slopes == [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625])
    }
}
