import Foundation
import Testing
@testable import FlexAttention

/// Score mods of the form `a * tanh(score * b)` run as one tile kernel; these check what is recognised and that
/// the kernel's values and slopes match tanh in Float64 on both instruction sets.
@Suite struct ScaledTanhTests {
    @Test("recognised forms and their scales")
    func recognised() throws {
        let forms: [(ScoreMod, input: Float, output: Float)] = [
            (.softCap(30), 1 / 30, 30),
            (try ScoreMod(parsing: "c * tanh(score / c)", parameters: ["c": .float(7)]), 1 / 7, 7),
            (try ScoreMod(parsing: "tanh(0.5 * score) * 3.0"), 0.5, 3),
            (try ScoreMod(parsing: "tanh(score)"), 1, 1),
        ]
        for (mod, input, output) in forms {
            let pattern = ScaledTanhPattern(mod.expression.node)
            #expect(pattern?.inputScale == input && pattern?.outputScale == output, "\(mod)")
        }
        for text in ["2.0 * tanh(score / 3.0) + 1.0", "tanh(score / 0.0)", "tanh(score) * score", "tanh(score / float(h))", "tanh(score + 1.0)"] {
            #expect(ScaledTanhPattern(try ScoreMod(parsing: text).expression.node) == nil, "\(text)")
        }
    }

    @Test("values and slopes against Float64", arguments: InstructionSet.allCases)
    func accuracy(_ instructionSet: InstructionSet) throws {
        let (queries, keys, cap) = (21, 37, 5.0)
        let evaluator = try ScoreModTileEvaluator(.softCap(Float(cap)), queryLength: queries, keyLength: keys)
        let grid = TileGrid(batch: 0, head: 0, queries: queries, keys: keys)
        // Scores from −40 to 40, denser near 0, where the kernel switches to its series.
        let initial: (Int, Int) -> Float = { q, kv in
            let u = Float(kv * queries + q) / Float(queries * keys) * 2 - 1
            return 40 * u * u * u
        }
        var slopes = [Float](repeating: 0, count: queries * keys)
        let values = InstructionSet.$preferred.withValue(instructionSet) {
            slopes.withUnsafeMutableBufferPointer { slope in
                grid.run(initial: initial) { evaluator.modify($0, derivative: slope.baseAddress) }
            }
        }
        for kv in 0..<keys {
            for q in 0..<queries {
                let i = kv * queries + q
                let t = tanh(Double(initial(q, kv)) / cap)
                #expect(abs(Double(values[i]) - cap * t) <= 4e-7 * max(1, abs(cap * t)), "value at q \(q) kv \(kv)")
                #expect(abs(Double(slopes[i]) - (1 - t * t)) <= 4e-7, "slope at q \(q) kv \(kv)")
            }
        }
    }
}
