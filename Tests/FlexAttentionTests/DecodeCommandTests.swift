@testable import FlexAttention
import Testing

@Suite("flexattn decode",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct DecodeCommandTests {
    @Test("a paged cache with a block table, mods, a table and sinks gives the reference's O and LSE")
    func paged() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let decodeCase = try DecodeCase(
            batch: 3, queryHeads: 4, kvHeads: 2, queryLength: 2, lengths: [19, 5, 40], capacity: 40, headDim: 16,
            valueDim: 8, pageSize: 6, rng: &rng)
        let table = try #require(decodeCase.cache.pageTable)
        let sinks: [Float] = [0.3, -2, 1, -.infinity]
        let bias = (0..<4).map { _ in Float.random(in: -1...1, using: &rng) }
        let folder = try ScratchFolder()
        try folder.write(decodeCase.query, to: "q.npy")
        try folder.write(decodeCase.cache.keys, to: "k.npy")
        try folder.write(decodeCase.cache.values, to: "v.npy")
        try folder.write(NumPyArray(shape: [3], elements: .int64([19, 5, 40])), to: "l.npy")
        try folder.write(NumPyArray(shape: [3, table.maxPagesPerSequence], elements: .int32(table.entries)), to: "t.npy")
        try folder.write(Tensor(sinks, shape: [4]), to: "s.npy")
        try folder.write(Tensor(bias, shape: [4]), to: "bias.npy")
        let result = try folder.run(
            ["--q", "q.npy", "--k-cache", "k.npy", "--v-cache", "v.npy", "--lengths", "l.npy", "--block-table", "t.npy",
             "--out", "o.npy", "--lse", "lse.npy", "--mask", "q - kv < 9", "--score", "score + bias[h] * float(kv - q)",
             "--table", "bias=bias.npy", "--sink", "s.npy"], command: "decode")
        try #require(result.status == 0, "stderr: \(result.standardError)")
        let scoreMod = try ScoreMod(parsing: "score + bias[h] * float(kv - q)", tables: [
            try ModTable(name: "bias", shape: [4], elements: .float(bias)),
        ])
        let expected = try decodeCase.expected(mask: try MaskMod(parsing: "q - kv < 9"), scoreMod: scoreMod, sinks: sinks)
        #expect(relativeError(floats(try folder.read("o.npy"), shape: [3, 4, 2, 8]), expected.o) < 1e-5, "seed \(seed)")
        #expect(logSumExpError(floats(try folder.read("lse.npy"), shape: [3, 4, 2]), expected.lse) < 1e-5, "seed \(seed)")
    }

    @Test("a contiguous cache with <i4 lengths")
    func contiguous() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let decodeCase = try DecodeCase(
            batch: 2, queryHeads: 3, kvHeads: 1, queryLength: 1, lengths: [7, 30], capacity: 31, headDim: 8, rng: &rng)
        let folder = try ScratchFolder()
        try folder.write(decodeCase.query, to: "q.npy")
        try folder.write(decodeCase.cache.keys, to: "k.npy")
        try folder.write(decodeCase.cache.values, to: "v.npy")
        try folder.write(NumPyArray(shape: [2], elements: .int32([7, 30])), to: "l.npy")
        let result = try folder.run(
            ["--q", "q.npy", "--k-cache", "k.npy", "--v-cache", "v.npy", "--lengths", "l.npy", "--out", "o.npy"],
            command: "decode")
        try #require(result.status == 0, "stderr: \(result.standardError)")
        #expect(relativeError(floats(try folder.read("o.npy"), shape: [2, 3, 1, 8]), try decodeCase.expected().o) < 1e-5)
    }

    @Test("a length past the cache, a page outside the pool, fewer tokens than queries: one line, exit 1, no output",
          arguments: [
            ([4, 9], nil as [Int32]?, "capacity"), ([4, 8], [0, 1, 2, 5], "outside the pool"),
            ([1, 8], nil as [Int32]?, "fewer than"),
          ])
    func refused(lengths: [Int], entries: [Int32]?, message: String) throws {
        let folder = try ScratchFolder()
        let paged = entries != nil
        try folder.write(Tensor(zeros: [2, 2, 2, 4]), to: "q.npy")
        try folder.write(Tensor(zeros: paged ? [4, 4, 1, 4] : [2, 1, 8, 4]), to: "k.npy")
        try folder.write(NumPyArray(shape: [2], elements: .int32(lengths.map(Int32.init))), to: "l.npy")
        var arguments = ["--q", "q.npy", "--k-cache", "k.npy", "--v-cache", "k.npy", "--lengths", "l.npy", "--out", "o.npy"]
        if let entries {
            try folder.write(NumPyArray(shape: [2, 2], elements: .int32(entries)), to: "t.npy")
            arguments += ["--block-table", "t.npy"]
        }
        let result = try folder.run(arguments, command: "decode")
        #expect(result.status == 1)
        #expect(result.standardError.contains(message), "stderr: \(result.standardError)")
        #expect(result.standardError.split(separator: "\n").count == 1)
        #expect(!(try folder.names().contains("o.npy")))
    }
}
