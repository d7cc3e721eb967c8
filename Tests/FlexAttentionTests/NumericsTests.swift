@testable import FlexAttention
import Testing

@Suite("Numerics")
struct NumericsTests {
    @Test("BFloat16 rounds to nearest, ties to even, and keeps specials")
    func bfloat16Rounding() {
        #expect(BFloat16(1.0).bitPattern == 0x3F80)
        // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to the even mantissa (1.0).
        #expect(BFloat16(Float(bitPattern: 0x3F80_8000)).bitPattern == 0x3F80)
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
        #expect(BFloat16(Float(bitPattern: 0x3F81_8000)).bitPattern == 0x3F82)
        #expect(BFloat16(Float(bitPattern: 0x3F80_8001)).bitPattern == 0x3F81)
        #expect(BFloat16(Float.infinity).float == .infinity)
        #expect(BFloat16(-Float.infinity).float == -.infinity)
        #expect(BFloat16(Float.nan).float.isNaN)
        #expect(BFloat16(Float.greatestFiniteMagnitude).float == .infinity)
        var rng = SeededRandom(seed: freshSeed())
        for _ in 0..<1000 {
            let x = Float.random(in: -1e6...1e6, using: &rng)
            let rounded = BFloat16(x).float
            #expect(abs(rounded - x) <= abs(x) * 0x1p-8)
        }
    }

    @Test("large logits (|s| ~ 1e4) stay exact")
    func largeLogits() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([1, 2, 70, 16], range: 40, rng: &rng)
        let k = try randomTensor([1, 2, 90, 16], range: 40, rng: &rng)
        let v = try randomTensor([1, 2, 90, 16], rng: &rng)
        let result = try Attention().forward(query: q, key: k, value: v, options: .init(scale: 1, isCausal: true))
        let reference = ReferenceAttention(query: q, key: k, value: v, scale: 1, keep: { _, _, i, j in i >= j })
            .forward()
        // A Float32 score of 1e4 is rounded by ~5e-4 before any attention arithmetic, which moves its probability
        // by as much: 1e-4 over the output is what Float32 scores allow (an overflow or a lost maximum is far off).
        #expect(relativeError(result.output.floats(), reference.o) < 1e-4)
        #expect(logSumExpError(result.logSumExp.floats(), reference.lse) < 1e-6)
        #expect(reference.lse.map(abs).max() ?? 0 > 1000)
    }

    @Test("gradients match finite differences of the forward pass")
    func finiteDifferences() throws {
        var rng = SeededRandom(seed: freshSeed())
        let shape = [1, 2, 5, 3]
        let (q, k, v, dO) = (try randomTensor(shape, rng: &rng), try randomTensor([1, 1, 6, 3], rng: &rng),
                             try randomTensor([1, 1, 6, 3], rng: &rng), try randomTensor(shape, rng: &rng))
        let options = AttentionOptions(scale: 0.7, isCausal: true, scoreMod: .softCap(1.5))
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO,
                                           options: options)
        let upstream = dO.floats().map(Double.init)
        // loss = Σ O ∘ dO through the library's own forward pass, in Float32, by central differences.
        func numeric(_ which: Int) throws -> [Double] {
            let inputs = [q.floats(), k.floats(), v.floats()]
            let shapes = [q.shape, k.shape, v.shape]
            return try inputs[which].indices.map { index in
                func loss(_ delta: Float) throws -> Double {
                    var changed = inputs
                    changed[which][index] += delta
                    let o = try attention.forward(
                        query: Tensor(changed[0], shape: shapes[0]), key: Tensor(changed[1], shape: shapes[1]),
                        value: Tensor(changed[2], shape: shapes[2]), options: options).output.floats()
                    return zip(o, upstream).reduce(0) { $0 + Double($1.0) * $1.1 }
                }
                let step: Float = 1e-2
                return (try loss(step) - loss(-step)) / Double(2 * step)
            }
        }
        #expect(relativeError(grads.query.floats(), try numeric(0)) < 2e-3)
        #expect(relativeError(grads.key.floats(), try numeric(1)) < 2e-3)
        #expect(relativeError(grads.value.floats(), try numeric(2)) < 2e-3)
    }

    @Test("the same bits with one thread and with all")
    func threadCountIndependence() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([1, 3, 200, 40], rng: &rng)
        let k = try randomTensor([1, 1, 330, 40], rng: &rng)
        let v = try randomTensor([1, 1, 330, 24], rng: &rng)
        let dO = try randomTensor([1, 3, 200, 24], rng: &rng)
        let attention = Attention()
        func run() throws -> [[Float]] {
            let forward = try attention.forward(query: q, key: k, value: v)
            let grads = try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO)
            return [forward.output.floats(), grads.query.floats(), grads.key.floats(), grads.value.floats()]
        }
        let serial = try CPUParallelism.$maximumThreads.withValue(1) { try run() }
        let three = try CPUParallelism.$maximumThreads.withValue(3) { try run() }
        let all = try run()
        #expect(serial == all)
        #expect(three == all)
    }
}
