@testable import FlexAttention
import Testing

/// Decoding against contiguous and paged KV caches on the CPU, against the Float64 reference computed from the
/// logical keys and values, with NaN in every cache slot past a sequence's length.
@Suite("Decoding against a KV cache")
struct DecodeTests {
    private func check(
        _ decodeCase: DecodeCase, options: AttentionOptions = .init(), sinks: [Float]? = nil, seed: UInt64,
        dtype: DType = .float32
    ) throws {
        var options = options
        options.sinks = sinks
        let result = try Attention().decode(query: decodeCase.query, cache: decodeCase.cache, options: options)
        let expected = try decodeCase.expected(mask: options.isCausal ? options.mask.map { .causal && $0 } ?? .causal : options.mask,
                                               scoreMod: options.scoreMod, sinks: sinks)
        let error = relativeError(result.output.floats(), expected.o)
        #expect(error < tolerance(dtype), "O error \(error), seed \(seed)")
        let lseError = logSumExpError(result.logSumExp.floats(), expected.lse)
        #expect(lseError < 1e-5, "LSE error \(lseError), seed \(seed)")
    }

    @Test("contiguous and paged caches (page 1, 5, 16, 64), GQA and MQA, 1 to 16 queries, odd lengths, D 80",
          arguments: [nil, 1, 5, 16, 64] as [Int?])
    func layouts(pageSize: Int?) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        for (hq, hkv, sq) in [(6, 2, 1), (4, 1, 3), (6, 3, 16)] {
            let decodeCase = try DecodeCase(
                batch: 3, queryHeads: hq, kvHeads: hkv, queryLength: sq, lengths: [37, 130, 16], capacity: 150,
                headDim: 80, valueDim: 48, pageSize: pageSize, rng: &rng)
            try check(decodeCase, seed: seed)
        }
    }

    @Test("a long sequence runs in several splits; the bits do not depend on the thread count",
          arguments: [nil, 16] as [Int?])
    func splits(pageSize: Int?) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        #expect(CPUDecode.splitCount(batch: 1, headChunks: 1, capacity: 1100) == 2)
        let decodeCase = try DecodeCase(
            batch: 1, queryHeads: 4, kvHeads: 2, queryLength: 2, lengths: [1031], capacity: 1100, headDim: 64,
            pageSize: pageSize, rng: &rng)
        try check(decodeCase, options: AttentionOptions(mask: .slidingWindow(700)), seed: seed)
        let all = try Attention().decode(query: decodeCase.query, cache: decodeCase.cache)
        let one = try CPUParallelism.$maximumThreads.withValue(1) {
            try Attention().decode(query: decodeCase.query, cache: decodeCase.cache)
        }
        #expect(all.output.floats().map(\.bitPattern) == one.output.floats().map(\.bitPattern))
    }

    @Test("mods see absolute positions and the sequence's lengths: window, soft-cap, ALiBi, documents, causal")
    func mods() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let decodeCase = try DecodeCase(
            batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 4, lengths: [90, 61], capacity: 100, headDim: 32,
            pageSize: 7, rng: &rng)
        let documents = try MaskMod.document(ids: (0..<decodeCase.cache.capacity).map { $0 / 23 })  // 105: whole pages
        let fromEnd = MaskMod { _, _, q, kv in ModInt.keyLength - kv <= 40 || q - kv == 3 }
        for options in [
            AttentionOptions(mask: .slidingWindow(20)),
            AttentionOptions(isCausal: true, scoreMod: .softCap(2)),
            AttentionOptions(isCausal: true, scoreMod: try .alibi(heads: 4)),
            AttentionOptions(mask: documents),
            AttentionOptions(mask: fromEnd, scoreMod: ScoreMod { s, _, _, q, _ in s * float(ModInt.queryLength - q) }),
        ] {
            try check(decodeCase, options: options, seed: seed)
        }
    }

    @Test("sinks join every row, including rows the mask empties, whose output is 0 and LSE the sink")
    func sinks() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let decodeCase = try DecodeCase(
            batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 2, lengths: [9, 40], capacity: 48, headDim: 16,
            rng: &rng)
        let sinks: [Float] = [0.5, -1, 2, -.infinity]
        try check(decodeCase, sinks: sinks, seed: seed)
        let headOneEmpty = AttentionOptions(mask: MaskMod { _, h, _, _ in h != 1 })
        try check(decodeCase, options: headOneEmpty, sinks: sinks, seed: seed)
        var options = headOneEmpty
        options.sinks = sinks
        let result = try Attention().decode(query: decodeCase.query, cache: decodeCase.cache, options: options)
        let lse = result.logSumExp.floats()
        #expect(lse[2] == -1 && lse[3] == -1, "head 1's LSE is its sink, seed \(seed)")
        #expect(result.output.floats()[2 * 16..<4 * 16].allSatisfy { $0 == 0 })
    }

    @Test("Float16 and BFloat16 caches", arguments: [DType.float16, .bfloat16])
    func halfPrecision(dtype: DType) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let decodeCase = try DecodeCase(
            batch: 2, queryHeads: 8, kvHeads: 2, queryLength: 1, lengths: [70, 3], capacity: 80, headDim: 64,
            pageSize: 16, dtype: dtype, rng: &rng)
        try check(decodeCase, seed: seed, dtype: dtype)
    }

    @Test("bad queries and options are typed errors")
    func errors() throws {
        var rng = SeededRandom(seed: 3)
        let decodeCase = try DecodeCase(
            batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 2, lengths: [5, 1], capacity: 8, headDim: 16, rng: &rng)
        #expect(throws: FlexAttentionError.self) {  // sequence 1 holds 1 token, fewer than 2 queries
            try Attention().decode(query: decodeCase.query, cache: decodeCase.cache)
        }
        let cache = try KVCache(keys: decodeCase.cache.keys, values: decodeCase.cache.values, lengths: [5, 3])
        let wrongDim = try Tensor(zeros: [2, 4, 2, 8])
        #expect(throws: FlexAttentionError.self) { try Attention().decode(query: wrongDim, cache: cache) }
        let wrongBatch = try Tensor(zeros: [1, 4, 2, 16])
        #expect(throws: FlexAttentionError.self) { try Attention().decode(query: wrongBatch, cache: cache) }
        let threeHeads = try Tensor(zeros: [2, 3, 2, 16])
        #expect(throws: FlexAttentionError.self) { try Attention().decode(query: threeHeads, cache: cache) }
        let blockMask = try BlockMask(.causal, batch: 2, heads: 4, queryLength: 2, keyLength: 8)
        #expect(throws: FlexAttentionError.self) {
            try Attention().decode(query: decodeCase.query, cache: cache, options: .init(blockMask: blockMask))
        }
        let outside = try IntTable(name: "t", values: [Int32](repeating: 0, count: 4), shape: [4])
        #expect(throws: ModError.self) {
            try Attention().decode(
                query: decodeCase.query, cache: cache, options: .init(mask: MaskMod { _, _, _, kv in outside[kv] == 0 }))
        }
    }
}
