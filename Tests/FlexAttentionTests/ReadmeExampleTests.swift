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

/// The README's serving example, at a small size.
@Test("the README decoding example runs")
func readmeDecodingExample() throws {
    var rng = SeededRandom(seed: freshSeed())
    let attention = Attention(device: .cpu)
    var cache = try KVCache(batch: 2, kvHeads: 2, headDim: 16, pageCount: 64, pageSize: 16,
                            maxPagesPerSequence: 8, dtype: .bfloat16)
    try cache.append(keys: randomTensor([2, 2, 20, 16], rng: &rng), values: randomTensor([2, 2, 20, 16], rng: &rng))
    let sinkLogits: [Float] = [0, 1, -1, 0.5]
    for _ in 0..<3 {
        try cache.append(keys: randomTensor([2, 2, 1, 16], rng: &rng), values: randomTensor([2, 2, 1, 16], rng: &rng))
        let step = try attention.decode(query: randomTensor([2, 4, 1, 16], rng: &rng), cache: cache,
                                        options: AttentionOptions(mask: .slidingWindow(4096), sinks: sinkLogits))
        #expect(step.output.shape == [2, 4, 1, 16] && step.logSumExp.shape == [2, 4, 1])
    }
    #expect(cache.lengths == [23, 23])
    try cache.release(sequence: 1)
    #expect(cache.lengths == [23, 0] && cache.pageTable?.freePages.count == 64 - 2)
}

/// The README's packed-sequences example, at its own size.
@Test("the README packed-sequences example runs")
func readmePackedExample() throws {
    var rng = SeededRandom(seed: freshSeed())
    let attention = Attention(device: .cpu)
    let q = try randomTensor([1400, 4, 16], rng: &rng)
    let k = try randomTensor([1400, 2, 16], rng: &rng)
    let v = try randomTensor([1400, 2, 8], rng: &rng)
    let sequences = try PackedSequences(queryOffsets: [0, 300, 1324, 1400], keyOffsets: [0, 300, 1324, 1400])
    let packed = try attention.forward(query: q, key: k, value: v,
                                       sequences: sequences, options: .init(isCausal: true))
    #expect(packed.output.shape == [1400, 4, 8] && packed.logSumExp.shape == [4, 1400])
}
