@testable import FlexAttention
import Testing

/// Attention with masks and score mods, forward and backward, against the Float64 reference evaluating the same
/// mods element by element.
@Suite("CPU attention with mods")
struct ModAttentionTests {
    static let (batch, queryHeads, keyValueHeads, queryLength, keyLength, headDim) = (2, 4, 2, 150, 203, 48)

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        var mask: MaskMod?
        var score: ScoreMod?
        var isCausal = false
        var testDescription: String { name }
    }

    static func cases() throws -> [Case] {
        let ids = (0..<keyLength).map { $0 < 40 ? 0 : $0 < 41 ? 1 : $0 < 170 ? 2 : 3 }
        let bias = (0..<(queryHeads * 17)).map { Float($0 % 7) * 0.3 - 1 }
        return [
            Case(name: "sliding window 37", mask: .slidingWindow(37)),
            Case(name: "symmetric window 20", mask: .symmetricWindow(radius: 20)),
            Case(name: "chunked 64", mask: .chunked(64)),
            Case(name: "causal bottom-right", mask: .causalBottomRight),
            Case(name: "prefix LM 50", mask: .prefixLM(length: 50)),
            Case(name: "prefix LM per batch", mask: try .prefixLM(lengths: [13, 90])),
            Case(name: "document ids", mask: try .document(ids: ids)),
            Case(name: "document offsets", mask: try .document(offsets: [0, 40, 41, 170, keyLength])),
            Case(name: "document causal", mask: try .documentCausal(ids: ids)),
            Case(name: "dilated window", mask: .dilatedWindow(size: 60, dilation: 3)),
            Case(name: "mask and causal flag", mask: .symmetricWindow(radius: 30), isCausal: true),
            Case(name: "soft cap", score: .softCap(2)),
            Case(name: "ALiBi causal", score: try .alibi(heads: queryHeads), isCausal: true),
            Case(name: "relative bias and window", mask: .slidingWindow(100),
                 score: try .relativePositionBias(bias, heads: queryHeads, maxDistance: 8)),
            Case(name: "composed score mods", score: ScoreMod.softCap(3).then(try .alibi(heads: queryHeads))),
            Case(name: "rows with nothing kept", mask: MaskMod { _, _, q, kv in q >= 70 && q - 70 >= kv }),
        ]
    }

    func reference(_ c: Case, _ q: Tensor, _ k: Tensor, _ v: Tensor, tables: [String: [Double]] = [:])
        -> ReferenceAttention
    {
        let (sq, skv) = (Self.queryLength, Self.keyLength)
        let maskNode = c.mask?.expression.node
        let scoreNode = c.score?.expression.node
        return ReferenceAttention(
            query: q, key: k, value: v,
            score: scoreNode.map { node in
                { s, b, h, i, j in
                    FlexAttentionTests.reference(node, at: ReferencePoint(
                        b: b, h: h, q: i, kv: j, queryLength: sq, keyLength: skv, score: s, tables: tables)).real
                }
            },
            keep: { b, h, i, j in
                (!c.isCausal || i >= j) && (maskNode.map {
                    FlexAttentionTests.reference($0, at: ReferencePoint(
                        b: b, h: h, q: i, kv: j, queryLength: sq, keyLength: skv)).bool
                } ?? true)
            })
    }

    @Test(arguments: try cases())
    func forwardAndBackwardMatchReference(_ c: Case) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (b, hq, hkv, sq, skv, d) = (Self.batch, Self.queryHeads, Self.keyValueHeads, Self.queryLength,
                                        Self.keyLength, Self.headDim)
        let q = try randomTensor([b, hq, sq, d], range: 2, rng: &rng)
        let k = try randomTensor([b, hkv, skv, d], range: 2, rng: &rng)
        let v = try randomTensor([b, hkv, skv, d], rng: &rng)
        let dO = try randomTensor([b, hq, sq, d], rng: &rng)
        let options = AttentionOptions(isCausal: c.isCausal, mask: c.mask, scoreMod: c.score)
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO,
                                           options: options)
        let ref = reference(c, q, k, v)
        let (o, lse) = ref.forward()
        #expect(relativeError(forward.output.floats(), o) < 2e-5, "O, seed \(seed)")
        #expect(logSumExpError(forward.logSumExp.floats(), lse) < 2e-5, "LSE, seed \(seed)")
        let refGrads = ref.backward(outputGradient: dO.floats().map(Double.init))
        #expect(relativeError(grads.query.floats(), refGrads.dq) < 1e-4, "dQ, seed \(seed)")
        #expect(relativeError(grads.key.floats(), refGrads.dk) < 1e-4, "dK, seed \(seed)")
        #expect(relativeError(grads.value.floats(), refGrads.dv) < 1e-4, "dV, seed \(seed)")
        for value in forward.output.floats() + grads.query.floats() { #expect(value.isFinite) }
    }

    @Test("gradient of a learnable bias table matches finite differences")
    func tableGradient() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (hq, sq, skv, d) = (2, 37, 45, 16)
        let bias = (0..<(hq * 9)).map { _ in Float.random(in: -1...1, using: &rng) }
        let mod = try ScoreMod.relativePositionBias(bias, heads: hq, maxDistance: 4)
        let q = try randomTensor([1, hq, sq, d], rng: &rng)
        let k = try randomTensor([1, 1, skv, d], rng: &rng)
        let v = try randomTensor([1, 1, skv, d], rng: &rng)
        let dO = try randomTensor([1, hq, sq, d], rng: &rng)
        let options = AttentionOptions(isCausal: true, scoreMod: mod)
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO,
                                           options: options)
        let tableName = try #require(mod.expression.arguments.tables.first?.name)
        let gradient = try #require(grads.tableGradients[tableName]).floats()
        let upstream = dO.floats().map(Double.init)
        var expected: [Double] = []
        for index in bias.indices {
            func loss(_ delta: Double) -> Double {
                var values = bias.map(Double.init)
                values[index] += delta
                let node = mod.expression.node
                let ref = ReferenceAttention(query: q, key: k, value: v, score: { s, b, h, i, j in
                    FlexAttentionTests.reference(node, at: ReferencePoint(
                        b: b, h: h, q: i, kv: j, queryLength: sq, keyLength: skv, score: s,
                        tables: [tableName: values])).real
                }, keep: { _, _, i, j in i >= j })
                return ref.loss(outputGradient: upstream)
            }
            expected.append((loss(1e-4) - loss(-1e-4)) / 2e-4)
        }
        #expect(relativeError(gradient, expected) < 1e-4, "seed \(seed)")
    }

    @Test("the same bits on every run")
    func backwardIsDeterministic() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([1, 4, 300, 32], rng: &rng)
        let k = try randomTensor([1, 1, 300, 32], rng: &rng)
        let v = try randomTensor([1, 1, 300, 32], rng: &rng)
        let dO = try randomTensor([1, 4, 300, 32], rng: &rng)
        let options = AttentionOptions(scoreMod: .softCap(5))
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let runs = try (0..<3).map { _ in
            try attention.backward(query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options)
        }
        for run in runs.dropFirst() {
            #expect(run.query.floats() == runs[0].query.floats())
            #expect(run.key.floats() == runs[0].key.floats())
            #expect(run.value.floats() == runs[0].value.floats())
        }
    }
}
