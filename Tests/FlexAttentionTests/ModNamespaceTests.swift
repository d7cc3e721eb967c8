import Foundation
import Testing
import FlexAttention

/// The mod functions (`min`, `max`, `abs`, `clamp`, `exp`, `log`, `tanh`, `sqrt`, `select`, `float`) take traced
/// values only: in user code that imports FlexAttention, plain numbers still reach the standard library's (and
/// Foundation's) functions, literals included, and keep their types.
@Suite("Mod functions beside the standard library")
struct ModNamespaceTests {
    @Test("plain numbers and literals still call the standard library's functions")
    func noShadowing() {
        let (a, b) = (Int.random(in: -50...50), Int.random(in: -50...50))
        let smaller: Int = min(a, b)
        #expect(smaller == (a < b ? a : b))
        #expect(max(3, 7) == 7 && min(2.5, -1.0) == -1.0 && abs(-4) == 4 && abs(-2.5) == 2.5)
        let x = Float.random(in: 0.1...4)
        let results: [Float] = [exp(x), log(x), tanh(x), sqrt(x)]
        #expect(results == [Foundation.exp(x), Foundation.log(x), Foundation.tanh(x), x.squareRoot()])
        #expect(type(of: max(1.5, 2)) == Double.self)
    }

    @Test("the same names on traced values build mod expressions")
    func tracedValues() {
        let mask = MaskMod { _, _, q, kv in min(q, kv) == max(kv, q) - abs(q - kv) }
        #expect(mask.description.contains("min(") && mask.description.contains("abs("))
        let scoreMod = ScoreMod { score, _, _, q, kv in select(q >= kv, tanh(score), exp(score) * float(kv)) }
        #expect(scoreMod.description.contains("tanh(") && scoreMod.description.contains("where("))
    }
}
