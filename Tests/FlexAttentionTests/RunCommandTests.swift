@testable import FlexAttention
import Testing

@Suite("flexattn run against the Float64 reference",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct RunCommandTests {
    typealias Score = (_ s: Double, _ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Double

    /// Writes random Q, K, V and dO, runs `flexattn run` forward and backward, and compares every output with the
    /// reference (whose `score` and `keep` must match `extra`'s score mod and mask). Returns the folder, Q, K, V
    /// and dO for further checks.
    @discardableResult
    private func check(
        dtype: DType, shape: (b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int), scale: Double? = nil,
        extra: [String] = [], prepare: (ScratchFolder) throws -> Void = { _ in }, score: Score? = nil,
        keep: @escaping (Int, Int, Int, Int) -> Bool = { _, _, _, _ in true }
    ) throws -> (folder: ScratchFolder, q: Tensor, k: Tensor, v: Tensor, outputGradient: [Double]) {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (b, hq, hkv, sq, skv, d, dv) = shape
        let q = try randomTensor([b, hq, sq, d], dtype: dtype, rng: &rng)
        let k = try randomTensor([b, hkv, skv, d], dtype: dtype, rng: &rng)
        let v = try randomTensor([b, hkv, skv, dv], dtype: dtype, rng: &rng)
        let dO = try randomTensor([b, hq, sq, dv], dtype: dtype, rng: &rng)
        let folder = try ScratchFolder()
        for (tensor, name) in [(q, "q.npy"), (k, "k.npy"), (v, "v.npy"), (dO, "do.npy")] {
            try folder.write(tensor, to: name)
        }
        try prepare(folder)
        let result = try folder.run(
            ["--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy", "--lse", "lse.npy",
             "--grad-out", "do.npy", "--dq", "dq.npy", "--dk", "dk.npy", "--dv", "dv.npy"]
                + (scale.map { ["--scale", "\($0)"] } ?? []) + extra)
        try #require(result.status == 0, "stderr: \(result.standardError)")
        #expect(result.standardError.isEmpty)

        let reference = ReferenceAttention(query: q, key: k, value: v, scale: scale, score: score, keep: keep)
        let (o, lse) = reference.forward()
        let outputGradient = dO.floats().map(Double.init)
        let gradients = reference.backward(outputGradient: outputGradient)
        let limit = tolerance(dtype)
        let gradientLimit = dtype == .float32 ? 1e-4 : 4 * limit
        #expect(relativeError(floats(try folder.read("o.npy"), shape: [b, hq, sq, dv]), o) < limit, "O, seed \(seed)")
        #expect(logSumExpError(floats(try folder.read("lse.npy"), shape: [b, hq, sq]), lse) < limit, "LSE, seed \(seed)")
        #expect(relativeError(floats(try folder.read("dq.npy"), shape: q.shape), gradients.dq) < gradientLimit, "dQ, seed \(seed)")
        #expect(relativeError(floats(try folder.read("dk.npy"), shape: k.shape), gradients.dk) < gradientLimit, "dK, seed \(seed)")
        #expect(relativeError(floats(try folder.read("dv.npy"), shape: v.shape), gradients.dv) < gradientLimit, "dV, seed \(seed)")
        return (folder, q, k, v, outputGradient)
    }

    @Test("forward and backward with GQA and odd shapes", arguments: [DType.float32, .float16])
    func plain(dtype: DType) throws {
        try check(dtype: dtype, shape: (2, 4, 2, 13, 19, 24, 17))
    }

    @Test("a causal mask and a custom scale", arguments: [DType.float32, .float16])
    func causal(dtype: DType) throws {
        try check(dtype: dtype, shape: (1, 6, 3, 21, 21, 8, 5), scale: 0.3, extra: ["--mask", "q >= kv"],
                  keep: { _, _, q, kv in q >= kv })
    }

    @Test("rows the mask empties give zero output, −inf LSE and zero gradients")
    func emptyRows() throws {
        try check(dtype: .float32, shape: (1, 2, 1, 9, 6, 4, 4), extra: ["--mask", "kv > q"],
                  keep: { _, _, q, kv in kv > q })
    }

    @Test("a mask reading an <i8 table of document ids")
    func documentTable() throws {
        let ids: [Int64] = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]
        try check(
            dtype: .float32, shape: (1, 2, 2, 11, 11, 8, 8), extra: ["--table", "doc=doc.npy", "--mask", "doc[q] == doc[kv]"],
            prepare: { try $0.write(NumPyArray(shape: [11], elements: .int64(ids)).encoded(version: .v2), to: "doc.npy") },
            keep: { _, _, q, kv in ids[q] == ids[kv] })
    }

    @Test("a score mod reading an <f4 bias table, and the bias gradient by --dtable")
    func biasTable() throws {
        let (hq, sq, skv) = (2, 7, 9)
        let bias = (0..<hq * sq * skv).map { Float(($0 * 37) % 11) / 5 - 1 }
        func score(_ bias: [Double]) -> Score {
            { s, _, h, q, kv in s + bias[(h * sq + q) * skv + kv] }
        }
        let (folder, q, k, v, dO) = try check(
            dtype: .float32, shape: (2, hq, 1, sq, skv, 8, 6),
            extra: ["--table", "bias=bias.npy", "--score", "score + bias[h, q, kv]", "--dtable", "bias=dbias.npy"],
            prepare: { try $0.write(NumPyArray(shape: [hq, sq, skv], elements: .float32(bias)).encoded(), to: "bias.npy") },
            score: score(bias.map(Double.init)))
        // ∂loss/∂bias by central differences of the reference's loss Σ O∘dO.
        let step = 1e-5
        let expected = bias.indices.map { index in
            func loss(_ delta: Double) -> Double {
                var shifted = bias.map(Double.init)
                shifted[index] += delta
                return ReferenceAttention(query: q, key: k, value: v, score: score(shifted)).loss(outputGradient: dO)
            }
            return (loss(step) - loss(-step)) / (2 * step)
        }
        #expect(relativeError(floats(try folder.read("dbias.npy"), shape: [hq, sq, skv]), expected) < 1e-4)
    }
}
