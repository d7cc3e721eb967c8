@testable import FlexAttention
import Testing

/// Both vector paths compute the same function: the portable one (what AVX2-only and aarch64 machines run) is
/// forced here so that it is tested on any CPU.
@Suite("CPU instruction sets")
struct InstructionSetTests {
    @Test(arguments: InstructionSet.allCases)
    func forwardAndBackwardMatchReference(_ instructionSet: InstructionSet) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let q = try randomTensor([1, 4, 131, 80], rng: &rng)
        let k = try randomTensor([1, 2, 150, 80], rng: &rng)
        let v = try randomTensor([1, 2, 150, 48], rng: &rng)
        let dO = try randomTensor([1, 4, 131, 48], rng: &rng)
        let options = AttentionOptions(isCausal: true, scoreMod: .softCap(4))
        let attention = Attention()
        let (forward, grads) = try InstructionSet.$preferred.withValue(instructionSet) {
            let forward = try attention.forward(query: q, key: k, value: v, options: options)
            return (forward, try attention.backward(
                query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options))
        }
        let reference = ReferenceAttention(
            query: q, key: k, value: v, score: { s, _, _, _, _ in 4 * (s / 4).tanhValue },
            keep: { _, _, i, j in i >= j })
        #expect(relativeError(forward.output.floats(), reference.forward().o) < 2e-5, "seed \(seed)")
        let expected = reference.backward(outputGradient: dO.floats().map(Double.init))
        #expect(relativeError(grads.query.floats(), expected.dq) < 1e-4, "seed \(seed)")
        #expect(relativeError(grads.key.floats(), expected.dk) < 1e-4, "seed \(seed)")
        #expect(relativeError(grads.value.floats(), expected.dv) < 1e-4, "seed \(seed)")
    }

    @Test func baselineIsAlwaysAvailable() {
        #expect(InstructionSet.$preferred.withValue(.baseline) { InstructionSet.current } == .baseline)
    }
}
