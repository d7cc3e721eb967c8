@testable import FlexAttention
import Testing

/// NaN and ±∞ in the inputs reach exactly the outputs the documented rules name, and every other output matches
/// the Float64 reference computed without the non-finite rows.
@Suite("NaN and infinity reach only the outputs that use them")
struct NonFiniteTests {
    struct Poison: Sendable {
        var input: NonFiniteProblem.Input
        var b: Int, h: Int, s: Int
        var value: Float
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let shape: (b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int)
        var dtype: DType = .float32
        var options: AttentionOptions
        let keep: @Sendable (_ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Bool
        let poisons: [Poison]
        /// False where every non-finite value is one the mask removes.
        var reachesOutputs = true
        var testDescription: String { name }
    }

    static let causal: @Sendable (Int, Int, Int, Int) -> Bool = { _, _, i, j in i >= j }

    static func window(_ size: Int) -> @Sendable (Int, Int, Int, Int) -> Bool { { _, _, i, j in i >= j && i - j < size } }

    static func cases() throws -> [Case] {
        let ids = (0..<150).map { $0 < 40 ? 0 : $0 < 41 ? 1 : $0 < 120 ? 2 : 3 }
        return [
            Case(name: "causal, NaN in V at the last key", shape: (1, 2, 1, 150, 150, 80, 80),
                 options: .init(isCausal: true), keep: causal,
                 poisons: [Poison(input: .value, b: 0, h: 0, s: 149, value: .nan)]),
            Case(name: "±∞ in K and NaN in V past the keys' length (serving padding), GQA",
                 shape: (2, 4, 2, 130, 100, 48, 48),
                 options: .init(mask: MaskMod { _, _, _, kv in kv < ModInt(90) }), keep: { _, _, _, j in j < 90 },
                 poisons: [Poison(input: .key, b: 1, h: 1, s: 95, value: .infinity),
                           Poison(input: .key, b: 0, h: 1, s: 93, value: -.infinity),
                           Poison(input: .value, b: 0, h: 0, s: 99, value: .nan)], reachesOutputs: false),
            Case(name: "NaN in dO of one row, causal GQA 4:2, Dv ≠ D", shape: (1, 4, 2, 100, 100, 64, 32),
                 options: .init(isCausal: true), keep: causal,
                 poisons: [Poison(input: .outputGradient, b: 0, h: 3, s: 40, value: .nan)]),
            Case(name: "NaN and −∞ in Q, sliding window 37, D = 80", shape: (1, 2, 2, 131, 131, 80, 80),
                 options: .init(mask: .slidingWindow(37)), keep: window(37),
                 poisons: [Poison(input: .query, b: 0, h: 1, s: 100, value: .nan),
                           Poison(input: .query, b: 0, h: 0, s: 5, value: -.infinity)]),
            Case(name: "NaN key outside most rows' windows, MQA", shape: (1, 3, 1, 203, 203, 32, 24),
                 options: .init(mask: .slidingWindow(37)), keep: window(37),
                 poisons: [Poison(input: .key, b: 0, h: 0, s: 60, value: .nan)]),
            Case(name: "document mask, NaN in V of one document and in Q of another", shape: (1, 2, 2, 150, 150, 16, 16),
                 options: .init(mask: try .document(ids: ids)), keep: { _, _, i, j in ids[i] == ids[j] },
                 poisons: [Poison(input: .value, b: 0, h: 1, s: 45, value: .nan),
                           Poison(input: .query, b: 0, h: 0, s: 40, value: .nan)]),
            Case(name: "Float16, causal, +∞ in V", shape: (1, 2, 2, 77, 77, 32, 32), dtype: .float16,
                 options: .init(isCausal: true), keep: causal,
                 poisons: [Poison(input: .value, b: 0, h: 1, s: 30, value: .infinity)]),
            Case(name: "BFloat16, bottom-right causal Sq > Skv: NaN in Q of a row that keeps nothing, in K of the last key",
                 shape: (1, 2, 1, 100, 37, 16, 16), dtype: .bfloat16, options: .init(mask: .causalBottomRight),
                 keep: { _, _, i, j in i + 37 - 100 >= j },
                 poisons: [Poison(input: .query, b: 0, h: 0, s: 10, value: .nan),
                           Poison(input: .key, b: 0, h: 0, s: 36, value: .nan)]),
        ]
    }

    @Test(arguments: try cases())
    func onlyTheOutputsThatUseThemAreNaN(_ c: Case) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        var problem = NonFiniteProblem(shape: c.shape, dtype: c.dtype, keep: c.keep, rng: &rng)
        for p in c.poisons { problem.set(p.input, p.b, p.h, p.s, column: p.s % 7, to: p.value) }
        let t = try problem.tensors()
        let attention = Attention()
        let forward = try attention.forward(query: t.q, key: t.k, value: t.v, options: c.options, outputDType: .float32)
        let grads = try attention.backward(
            query: t.q, key: t.k, value: t.v, forward: forward, outputGradient: t.dO, options: c.options,
            gradientDType: .float32)

        let (reference, dO) = try problem.reference()
        let (o, lse) = reference.forward()
        let rows = try problem.poisonedForwardRows()
        let (forwardLimit, backwardLimit) =
            c.dtype == .float32 ? (2e-5, 1e-4) : (tolerance(c.dtype), 4 * tolerance(c.dtype))
        expectRows(forward.output.floats(), o, columns: c.shape.dv, poisoned: rows, tolerance: forwardLimit,
                   "O, seed \(seed)")
        expectRows(forward.logSumExp.floats(), lse, columns: 1, poisoned: rows, tolerance: forwardLimit,
                   "LSE, seed \(seed)")

        let gradients = reference.backward(outputGradient: dO)
        let keys = try problem.poisonedKeys()
        #expect(keys.contains(true) == c.reachesOutputs, "the case poisons what it says")
        expectRows(grads.query.floats(), gradients.dq, columns: c.shape.d, poisoned: try problem.poisonedBackwardRows(),
                   tolerance: backwardLimit, "dQ, seed \(seed)")
        expectRows(grads.key.floats(), gradients.dk, columns: c.shape.d, poisoned: keys, tolerance: backwardLimit,
                   "dK, seed \(seed)")
        expectRows(grads.value.floats(), gradients.dv, columns: c.shape.dv, poisoned: keys, tolerance: backwardLimit,
                   "dV, seed \(seed)")
    }
}
