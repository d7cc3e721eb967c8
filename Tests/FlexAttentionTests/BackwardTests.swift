@testable import FlexAttention
import Testing

@Suite("CPU backward against the Float64 reference")
struct BackwardTests {
    typealias Case = ForwardTests.Case

    static let cases: [Case] = [
        Case(b: 1, hq: 2, hkv: 2, sq: 203, skv: 203, d: 80, dv: 80),
        Case(b: 2, hq: 4, hkv: 2, sq: 70, skv: 131, d: 64, dv: 48, causal: true),
        Case(b: 1, hq: 3, hkv: 1, sq: 130, skv: 65, d: 192, dv: 24, causal: true, layout: .bshd),
        Case(b: 1, hq: 2, hkv: 1, sq: 1, skv: 100, d: 5, dv: 9),
        Case(b: 1, hq: 2, hkv: 2, sq: 77, skv: 77, d: 96, dv: 96, dtype: .float16),
        Case(b: 1, hq: 2, hkv: 1, sq: 66, skv: 66, d: 32, dv: 32, causal: true, dtype: .bfloat16),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (q, k, v) = try c.inputs(&rng)
        let dO = try randomTensor([c.b, c.hq, c.sq, c.dv], dtype: .float32, rng: &rng)
        let attention = Attention()
        let options = AttentionOptions(isCausal: c.causal)
        let forward = try attention.forward(query: q, key: k, value: v, options: options, outputDType: .float32)
        let grads = try attention.backward(
            query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options,
            gradientDType: .float32)
        let reference = ReferenceAttention(query: q, key: k, value: v, keep: { _, _, i, j in !c.causal || i >= j })
            .backward(outputGradient: dO.floats().map(Double.init))
        let limit = c.dtype == .float32 ? 1e-4 : tolerance(c.dtype) * 4
        #expect(relativeError(grads.query.floats(), reference.dq) < limit, "dQ, seed \(seed)")
        #expect(relativeError(grads.key.floats(), reference.dk) < limit, "dK, seed \(seed)")
        #expect(relativeError(grads.value.floats(), reference.dv) < limit, "dV, seed \(seed)")
    }
}
