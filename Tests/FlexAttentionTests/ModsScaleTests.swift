import Foundation
import Testing
@testable import FlexAttention

/// Hostile sizes of mods: deep nesting, long chains and traced DAGs whose trees are exponential. Each would take
/// minutes, gigabytes or the stack if an analysis walked the tree or recursed with the depth.
@Suite struct ModsScaleTests {
    /// `abs(abs(…abs(score)…))`, traced: a chain as deep as the text form refuses.
    static func nestedAbs(_ depth: Int) -> ScoreMod {
        ScoreMod { score, _, _, _, _ in
            var x = score
            for _ in 0..<depth { x = abs(x) }
            return x
        }
    }

    /// `x = x + x`, `levels` times: a DAG of `levels` nodes whose tree has 2^levels leaves.
    static func doubling(_ levels: Int) -> ScoreMod {
        ScoreMod { score, _, _, _, _ in
            var x = score
            for _ in 0..<levels { x = x + x }
            return x
        }
    }

    @Test func deepChainsAttendAndDifferentiate() throws {
        var rng = SeededRandom(seed: freshSeed())
        let (k, v, dO) = (try randomTensor([1, 1, 29, 16], rng: &rng), try randomTensor([1, 1, 29, 8], rng: &rng),
                          try randomTensor([1, 2, 37, 8], rng: &rng))
        // |score| has a kink at 0, where Float32 and Float64 may disagree on the sign: draw queries whose scores all
        // keep clear of it.
        var q: Tensor
        var reference: ReferenceAttention
        repeat {
            q = try randomTensor([1, 2, 37, 16], rng: &rng)
            reference = ReferenceAttention(query: q, key: k, value: v, score: { s, _, _, _, _ in Swift.abs(s) })
        } while (0..<2).contains { h in (0..<37).contains { i in (0..<29).contains { j in
            Swift.abs(reference.rawScore(0, h, i, j)) < 1e-4 } } }
        let options = AttentionOptions(scoreMod: Self.nestedAbs(20_000))
        let attention = Attention(device: .cpu)
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(
            query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options)
        #expect(relativeError(forward.output.floats(), reference.forward().o) < tolerance(.float32))
        let expected = reference.backward(outputGradient: dO.floats().map(Double.init))
        #expect(relativeError(grads.query.floats(), expected.dq) < tolerance(.float32))
        #expect(relativeError(grads.key.floats(), expected.dk) < tolerance(.float32))
    }

    @Test func exponentialTreesStayLinear() throws {
        let mod = Self.doubling(60)
        let text = mod.description
        #expect(text.count < 2_000, "\(text.prefix(200))")
        #expect(try ScoreMod(parsing: text) == mod)
        let evaluator = try ScoreModTileEvaluator(mod, queryLength: 4, keyLength: 4)
        let grid = TileGrid(batch: 1, head: 0, queries: 4, keys: 4)
        var slopes = [Float](repeating: .nan, count: 16)
        let values = grid.run(initial: { q, kv in Float(q - kv) }) { tile in
            slopes.withUnsafeMutableBufferPointer { evaluator.modify(tile, derivative: $0.baseAddress) }
        }
        for q in 0..<4 { for kv in 0..<4 { #expect(values[kv * 4 + q] == Float(q - kv) * 0x1p60) } }
        #expect(slopes.allSatisfy { $0 == 0x1p60 })
        let cuda = CUDAModFunction(scoreMod: mod)
        #expect(cuda.definition.count < 20_000)
        #expect(mod.expression.structuralKey.count < 2_000)
    }

    /// The probe's deeply nested masks, by label (the texts are too long to print as test arguments).
    static let deeplyNested: [String: String] = [
        "10,000 parentheses": String(repeating: "(", count: 10_000) + "q >= kv" + String(repeating: ")", count: 10_000),
        "60,000 !": String(repeating: "!", count: 60_000) + "(q >= kv)",
        "20,000 -(": "float(" + String(repeating: "-(", count: 20_000) + "q" + String(repeating: ")", count: 20_000) + ") > 0.0",
        "10,000 abs": "float(" + String(repeating: "abs(", count: 10_000) + "q" + String(repeating: ")", count: 10_000) + ") > 0.0",
        "5,000 table indices": "doc[" + String(repeating: "doc[", count: 5_000) + "q" + String(repeating: "]", count: 5_001) + " > 0",
    ]

    @Test("nesting deeper than the limit is one syntax error", arguments: deeplyNested.keys.sorted())
    func deepNesting(_ label: String) throws {
        let text = try #require(Self.deeplyNested[label])
        let doc = try ModTable(name: "doc", shape: [4], elements: .int32([0, 1, 2, 3]))
        #expect {
            try MaskMod(parsing: text, tables: [doc])
        } throws: { error in
            guard case .syntax(let message, _) = error as? ModError else { return false }
            return message == "nested more than \(ModParser.nestingLimit) levels deep"
        }
    }

    @Test func deepestAllowedNestingParsesOnASmallStack() throws {
        let depth = ModParser.nestingLimit - 1
        let text = String(repeating: "(", count: depth) + "-score" + String(repeating: ")", count: depth)
        final class Outcome: @unchecked Sendable { var mod: ScoreMod? }  // written before `done` signals
        let (outcome, done) = (Outcome(), DispatchSemaphore(value: 0))
        let thread = Thread {
            outcome.mod = try? ScoreMod(parsing: text)
            done.signal()
        }
        thread.stackSize = 512 * 1024
        thread.start()
        done.wait()
        let mod = try #require(outcome.mod)
        #expect(mod.expression.node.height == 2)
    }

    @Test func longChainsParsePrintAndRelease() throws {
        let terms = 11_000
        let chain = "q >= kv" + String(repeating: " && q >= kv", count: terms - 1)
        let mask = try MaskMod(parsing: chain)
        #expect(mask.expression.node.height == terms + 1)
        #expect(try MaskMod(parsing: mask.description) == mask)
        #expect(mask.description.count < 2 * chain.count)
        let sum = try ScoreMod(parsing: "score" + String(repeating: " + 0.5", count: terms))
        #expect(sum.expression.arguments.scalars.count == terms)
        let evaluator = try ScoreModTileEvaluator(sum, queryLength: 2, keyLength: 2)
        let values = TileGrid(batch: 0, head: 0, queries: 2, keys: 2).run(initial: { _, _ in 1 }) {
            evaluator.modify($0, derivative: nil)
        }
        #expect(values == [Float](repeating: 1 + Float(terms) / 2, count: 4))
        let blocks = try BlockMask(mask, batch: 1, heads: 1, queryLength: 100, keyLength: 100, queryBlockSize: 16,
                                   keyBlockSize: 16)
        #expect(blocks.description == (try BlockMask(.causal, batch: 1, heads: 1, queryLength: 100, keyLength: 100,
                                                      queryBlockSize: 16, keyBlockSize: 16)).description)
        // Released node by node: a recursive release of a million-node chain would overflow the stack.
        var traced = MaskMod.causal
        for _ in 0..<1_000_000 { traced = traced && .causal }
        #expect(traced.expression.node.height == 1_000_002)
    }

    @Test func letBindings() throws {
        let mask = try MaskMod(parsing: "let d = q - kv; let w = 4; d >= 0 && d < w")
        #expect(mask == (try MaskMod(parsing: "q - kv >= 0 && q - kv < 4")))
        #expect(mask.description == "q - kv >= 0 && q - kv < 4")
        let errors = ["let q = 1; q > 0", "let d = q; let d = kv; d > 0", "let doc = q; doc > 0", "let d = q d > 0",
                      "let = q; q > 0"]
        let doc = try ModTable(name: "doc", shape: [2], elements: .int32([0, 1]))
        for text in errors { #expect(throws: ModError.self, "\(text)") { try MaskMod(parsing: text, tables: [doc]) } }
    }
}
