import Testing
@testable import FlexAttention

/// A block mask built once is passed to every call that shares it, and gives what the mask itself gives.
@Suite("Block mask reuse")
struct BlockMaskReuseTests {
    @Test("a block mask given as an option computes what its mask computes, forward and backward, call after call")
    func sameAsMask() throws {
        var rng = SeededRandom(seed: freshSeed())
        let ids = (0..<150).map { $0 / 37 }
        let mask = try MaskMod.documentCausal(ids: ids) && .slidingWindow(50)
        let blockMask = try BlockMask(mask, batch: 2, heads: 4, queryLength: 150, keyLength: 150)
        #expect(blockMask.queryBlockSize == BlockMask.cpuBlockSize && blockMask.keyBlockSize == BlockMask.cpuBlockSize)
        let attention = Attention()
        for _ in 0..<2 {  // two "layers" with their own inputs, one block mask
            let q = try randomTensor([2, 4, 150, 32], rng: &rng)
            let k = try randomTensor([2, 2, 150, 32], rng: &rng)
            let v = try randomTensor([2, 2, 150, 24], rng: &rng)
            let dO = try randomTensor([2, 4, 150, 24], rng: &rng)
            let reused = try attention.forward(query: q, key: k, value: v, options: .init(blockMask: blockMask))
            let direct = try attention.forward(query: q, key: k, value: v, options: .init(mask: mask))
            #expect(reused.output.floats() == direct.output.floats())
            #expect(reused.logSumExp.floats() == direct.logSumExp.floats())
            let reusedGradients = try attention.backward(query: q, key: k, value: v, forward: reused, outputGradient: dO)
            let directGradients = try attention.backward(query: q, key: k, value: v, forward: direct, outputGradient: dO)
            #expect(reusedGradients.key.floats() == directGradients.key.floats())
            #expect(reusedGradients.query.floats() == directGradients.query.floats())
        }
    }

    @Test("a block mask of other blocks, or combined with causal, still computes its mask")
    func rebuiltWhenNeeded() throws {
        var rng = SeededRandom(seed: freshSeed())
        let mask = MaskMod.chunked(40)
        let coarse = try BlockMask(mask, queryLength: 130, keyLength: 130, queryBlockSize: 128, keyBlockSize: 32)
        let t = try (0..<3).map { _ in try randomTensor([1, 2, 130, 16], rng: &rng) }
        let attention = Attention()
        for options in [AttentionOptions(blockMask: coarse), AttentionOptions(isCausal: true, blockMask: coarse)] {
            var direct = options
            (direct.blockMask, direct.mask) = (nil, mask)
            let got = try attention.forward(query: t[0], key: t[1], value: t[2], options: options)
            let want = try attention.forward(query: t[0], key: t[1], value: t[2], options: direct)
            #expect(got.output.floats() == want.output.floats())
        }
    }

    @Test("a block mask of another shape or another mask is refused")
    func refused() throws {
        var rng = SeededRandom(seed: freshSeed())
        let t = try (0..<3).map { _ in try randomTensor([1, 2, 64, 16], rng: &rng) }
        let headMask = MaskMod { _, h, q, kv in q - kv < h * 10 + 5 }
        let cases: [AttentionOptions] = [
            .init(blockMask: try BlockMask(.slidingWindow(8), queryLength: 65, keyLength: 64)),
            .init(blockMask: try BlockMask(headMask, heads: 3, queryLength: 64, keyLength: 64)),
            .init(mask: .causal, blockMask: try BlockMask(.slidingWindow(8), queryLength: 64, keyLength: 64)),
        ]
        for options in cases {
            #expect(throws: FlexAttentionError.self) {
                try Attention().forward(query: t[0], key: t[1], value: t[2], options: options)
            }
        }
        // A mask that reads neither b nor h covers any batch and head count.
        let shared = try BlockMask(.slidingWindow(8), queryLength: 64, keyLength: 64)
        _ = try Attention().forward(query: t[0], key: t[1], value: t[2], options: .init(blockMask: shared))
    }
}
