import Testing
@testable import FlexAttention

/// Attention sinks: a per-head logit in every row's denominator, with no value; its gradient.
@Suite("Attention sinks")
struct SinkTests {
    @Test("forward, backward and the sink gradient match the Float64 reference, rows that keep nothing included")
    func matchesReference() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([2, 4, 45, 24], rng: &rng)
        let k = try randomTensor([2, 2, 61, 24], rng: &rng)
        let v = try randomTensor([2, 2, 61, 16], rng: &rng)
        let dO = try randomTensor([2, 4, 45, 16], rng: &rng)
        let sinks: [Float] = [0.5, -1, 2, -.infinity]
        // Bottom-right causal with Sq < Skv, and a window that empties the first rows of head 0 and 2.
        let mask = MaskMod { _, h, q, kv in !((h == 0 || h == 2) && q < 5) && q + 16 >= kv }
        let options = AttentionOptions(mask: mask, scoreMod: .softCap(4), sinks: sinks)
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let gradients = try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO)

        var reference = ReferenceAttention(
            query: q, key: k, value: v, score: { s, _, _, _, _ in 4 * (s / 4).tanhValue },
            keep: { _, h, q, kv in !((h == 0 || h == 2) && q < 5) && q + 16 >= kv })
        reference.sinks = sinks.map(Double.init)
        let (o, lse) = reference.forward()
        #expect(relativeError(forward.output.floats(), o) < 1e-5)
        #expect(logSumExpError(forward.logSumExp.floats(), lse) < 1e-5)
        let upstream = dO.floats().map(Double.init)
        let (dq, dk, dv) = reference.backward(outputGradient: upstream)
        #expect(relativeError(gradients.query.floats(), dq) < 1e-4)
        #expect(relativeError(gradients.key.floats(), dk) < 1e-4)
        #expect(relativeError(gradients.value.floats(), dv) < 1e-4)
        let sinkGradient = try #require(gradients.sinkGradient)
        #expect(relativeError(sinkGradient.floats(), reference.sinkGradient(outputGradient: upstream)) < 1e-4)
        #expect(sinkGradient.floats()[3] == 0, "a head without a sink has no sink gradient")

        // The reference's own gradient by central differences confirms the formula.
        let step = 1e-4
        for h in 0..<3 {
            var plus = reference, minus = reference
            plus.sinks?[h] += step
            minus.sinks?[h] -= step
            let numeric = (plus.loss(outputGradient: upstream) - minus.loss(outputGradient: upstream)) / (2 * step)
            #expect(abs(numeric - reference.sinkGradient(outputGradient: upstream)[h]) < 1e-6 * max(1, abs(numeric)))
        }
    }

    @Test("a row and its sink merge as two parts by LogSumExpMerge: empty rows take the sink, NaN stays, −∞ sinks change none")
    func rowsJoinTheirSink() throws {
        // Head 0: a kept row, an empty row, a NaN row, an overflowed row; head 1 has no sink.
        let output = try Tensor([1, 2, 0, 0, 3, 4, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12], shape: [1, 2, 4, 2])
        let logSumExp = try Tensor([0.25, -.infinity, .nan, .infinity, 1, -.infinity, .nan, 2], shape: [1, 2, 4])
        let joined = try AttentionSinks.forward(
            AttentionOutput(output: output, logSumExp: logSumExp), sinks: [0.5, -.infinity], options: nil)
        let (o, lse) = (joined.output.floats(), joined.logSumExp.floats())
        let weight: Float = 0.43782349911420193  // 1 / (1 + e^(0.5 − 0.25))
        #expect(abs(o[0] - weight) < 1e-6 && abs(o[1] - 2 * weight) < 1e-6)
        #expect(abs(lse[0] - 1.0759394198788437) < 1e-6)  // 0.5 + log(1 + e^(0.25 − 0.5))
        #expect(o[2] == 0 && o[3] == 0 && lse[1] == 0.5, "a row that keeps nothing: O′ = 0, LSE′ = sink")
        #expect(o[4].isNaN && o[5].isNaN && lse[2].isNaN)
        #expect(o[6].isNaN && o[7].isNaN && lse[3].isNaN, "+∞ is an overflowed row: NaN, as merging says")
        #expect(Array(o[8...]) == Array(output.floats()[8...]))
        #expect(lse[4] == 1 && lse[5] == -.infinity && lse[6].isNaN && lse[7] == 2)
    }

    @Test("the problem a backend runs when the sinks are joined afterwards has none, and is otherwise the same")
    func problemWithoutSinks() throws {
        let shape = try AttentionShape(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 8, headDim: 8, dtype: .float32)
        let problem = try AttentionProblem(shape: shape, options: .init(scale: 0.5, isCausal: true, sinks: [0, 1]))
        let stripped = problem.withoutSinks
        #expect(stripped.options.sinks == nil && problem.options.sinks == [0, 1])
        #expect(stripped.scale == 0.5 && stripped.mask == problem.mask && stripped.isCausalOnly)
    }

    @Test("a sink per query head, finite or −∞")
    func refused() throws {
        var rng = SeededRandom(seed: freshSeed())
        let t = try (0..<3).map { _ in try randomTensor([1, 2, 8, 8], rng: &rng) }
        for sinks: [Float] in [[0], [0, .nan], [.infinity, 0]] {
            #expect(throws: FlexAttentionError.self) {
                try Attention().forward(query: t[0], key: t[1], value: t[2], options: .init(sinks: sinks))
            }
        }
    }
}
