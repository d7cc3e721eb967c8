@testable import FlexAttention
import Testing

/// The README's example, at a small size, so the documentation keeps compiling and running.
@Test("the README example runs")
func readmeExample() throws {
    var rng = SeededRandom(seed: freshSeed())
    let q = try randomTensor([1, 8, 100, 64], rng: &rng)
    let k = try randomTensor([1, 2, 100, 64], rng: &rng)
    let v = try randomTensor([1, 2, 100, 64], rng: &rng)
    let dO = try randomTensor([1, 8, 100, 64], rng: &rng)
    let attention = Attention(device: .cpu)
    let options = AttentionOptions(
        mask: MaskMod { b, h, q, kv in q >= kv && q - kv < 1024 },
        scoreMod: ScoreMod { score, b, h, q, kv in 30 * tanh(score / 30) })
    let result = try attention.forward(query: q, key: k, value: v, options: options)
    let grads = try attention.backward(
        query: q, key: k, value: v, forward: result, outputGradient: dO, options: options)
    #expect(result.output.shape == [1, 8, 100, 64])
    #expect(result.logSumExp.shape == [1, 8, 100])
    #expect(grads.key.shape == [1, 2, 100, 64])
    #expect(options.mask?.description == "q >= kv && q - kv < 1024")
}
