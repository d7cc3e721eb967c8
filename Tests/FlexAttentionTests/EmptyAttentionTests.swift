import Testing
@testable import FlexAttention

/// Attention with an empty KV cache, no queries or no batch: every row keeps nothing.
@Suite("Empty attention")
struct EmptyAttentionTests {
    @Test("no keys: O = 0 and LSE = −∞ for every query row; gradients are 0, table gradients included",
          arguments: [(1, 3, 0), (2, 5, 0), (1, 0, 7), (0, 4, 4)])
    func empty(batch: Int, queries: Int, keys: Int) throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([batch, 4, queries, 16], rng: &rng)
        let k = try Tensor(zeros: [batch, 2, keys, 16], dtype: .float32, layout: .bshd)
        let v = try Tensor(zeros: [batch, 2, keys, 8])
        let bias = try FloatTable((0..<18).map { Float($0) }, shape: [2, 9])
        let options = AttentionOptions(
            isCausal: true, mask: .slidingWindow(3), scoreMod: ScoreMod { score, _, h, q, kv in
                score + bias[h % 2, clamp(q - kv, -4, 4) + 4]
            })
        let result = try Attention().forward(query: q, key: k, value: v, options: options, outputDType: .bfloat16)
        #expect(result.output.shape == [batch, 4, queries, 8] && result.output.dtype == .bfloat16)
        #expect(result.output.floats().allSatisfy { $0 == 0 })
        #expect(result.logSumExp.shape == [batch, 4, queries])
        #expect(result.logSumExp.floats().allSatisfy { $0 == -.infinity })
        let dO = try randomTensor([batch, 4, queries, 8], rng: &rng)
        let gradients = try Attention().backward(query: q, key: k, value: v, forward: result, outputGradient: dO)
        #expect(gradients.query.shape == q.shape && gradients.key.shape == k.shape && gradients.value.shape == v.shape)
        #expect([gradients.query, gradients.key, gradients.value].allSatisfy { $0.floats().allSatisfy { $0 == 0 } })
        #expect(gradients[table: bias]?.floats() == [Float](repeating: 0, count: 18))
    }
}
