@testable import FlexAttention
import Testing

@Suite("flexattn run with attention sinks",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct RunCommandSinkTests {
    @Test("--sink joins each row's denominator and --dsink writes its gradient, as the reference computes")
    func sinks() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([1, 4, 33, 16], rng: &rng)
        let k = try randomTensor([1, 2, 41, 16], rng: &rng)
        let v = try randomTensor([1, 2, 41, 8], rng: &rng)
        let dO = try randomTensor([1, 4, 33, 8], rng: &rng)
        let sinks = (0..<4).map { _ in Float.random(in: -2...2, using: &rng) }
        let folder = try ScratchFolder()
        for (tensor, name) in [(q, "q.npy"), (k, "k.npy"), (v, "v.npy"), (dO, "do.npy"), (try Tensor(sinks, shape: [4]), "s.npy")] {
            try folder.write(tensor, to: name)
        }
        let result = try folder.run(
            ["--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy", "--lse", "lse.npy", "--mask", "q >= kv",
             "--sink", "s.npy", "--grad-out", "do.npy", "--dq", "dq.npy", "--dk", "dk.npy", "--dv", "dv.npy",
             "--dsink", "ds.npy"])
        try #require(result.status == 0, "stderr: \(result.standardError)")
        var reference = ReferenceAttention(query: q, key: k, value: v, keep: { _, _, q, kv in q >= kv })
        reference.sinks = sinks.map(Double.init)
        let (o, lse) = reference.forward()
        let upstream = dO.floats().map(Double.init)
        #expect(relativeError(floats(try folder.read("o.npy"), shape: [1, 4, 33, 8]), o) < 1e-5)
        #expect(logSumExpError(floats(try folder.read("lse.npy"), shape: [1, 4, 33]), lse) < 1e-5)
        #expect(relativeError(floats(try folder.read("dq.npy"), shape: q.shape), reference.backward(outputGradient: upstream).dq) < 1e-4)
        #expect(relativeError(floats(try folder.read("ds.npy"), shape: [4]), reference.sinkGradient(outputGradient: upstream)) < 1e-4)
    }

    @Test("--dsink without --sink or without a backward pass is refused, and nothing is written")
    func refused() throws {
        let folder = try ScratchFolder()
        let result = try folder.run(["--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy", "--dsink", "ds.npy"])
        #expect(result.status == 1 && result.standardError.contains("--dsink"))
        #expect(try folder.names().isEmpty)
    }
}
