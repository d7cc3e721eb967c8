@testable import FlexAttention
import Testing

/// `b` fixed to a sequence's index: what a packed sequence's mods become when it runs as a batch of its own.
@Suite struct ModFixedBatchTests {
    /// A mask reading `b` twice, through a table and in arithmetic.
    let mask: MaskMod

    init() throws {
        let windows = try IntTable(name: "window", values: [3, 1, 7], shape: [3])
        mask = MaskMod { b, h, q, kv in q - kv < windows[b] && (kv + b) % 2 == h % 2 }
    }

    @Test("the fixed mod is the original at b = index, everywhere")
    func evaluatesAsTheOriginal() {
        let fixed = (0..<3).map { mask.fixingBatch($0) }
        for (index, mask) in fixed.enumerated() {
            #expect(!mask.expression.reads(.b))
            for h in 0..<2 {
                for q in 0..<9 {
                    for kv in 0..<9 {
                        let here = ReferencePoint(b: 0, h: h, q: q, kv: kv, queryLength: 9, keyLength: 9)
                        var original = here
                        original.b = index
                        #expect(reference(mask.expression.node, at: here) == reference(mask.expression.node, at: original))
                    }
                }
            }
        }
    }

    @Test("one structure for every index (one compiled kernel), the index among the arguments, b one shared literal")
    func liftsTheIndex() {
        let (zero, two) = (mask.fixingBatch(0), mask.fixingBatch(2))
        #expect(zero.expression.structuralKey == two.expression.structuralKey)
        #expect(zero.expression.structuralKey != mask.expression.structuralKey)
        #expect(zero.expression.arguments != two.expression.arguments)
        let scalars = (mask.expression.arguments.scalars, two.expression.arguments.scalars)
        #expect(scalars.1.count == scalars.0.count + 1 && scalars.1.filter { $0 == .int(2) }.count == 3)
        // b was one node read twice; it is one literal read twice, so the DAG keeps its size.
        #expect(two.expression.node.uniqueNodes.count == mask.expression.node.uniqueNodes.count)
        #expect(two.description == "q - kv < window[2] && (kv + 2) % 2 == h % 2")
    }

    @Test("a mod that does not read b is itself; tables, and the names their gradients go by, are kept")
    func leavesTheRestAlone() throws {
        let bias = try FloatTable(name: "bias", values: [1, 2, 3], shape: [3])
        let plain = ScoreMod { score, _, h, _, _ in score + bias[h] }
        #expect(plain.fixingBatch(5).expression.node.identity == plain.expression.node.identity)
        let perSequence = ScoreMod { score, b, _, _, _ in score * bias[b] }
        #expect(perSequence.fixingBatch(1).expression.arguments.tables == [bias.table])
        #expect(perSequence.fixingBatch(1).description == "score * bias[1]")
    }

    @Test("a chain far deeper than the stack allows to recurse")
    func deepChain() {
        let mod = ScoreMod { score, b, _, _, _ in
            var x = score
            for _ in 0..<20_000 { x = x + float(b) }
            return x
        }
        let fixed = mod.fixingBatch(4)
        #expect(!fixed.expression.reads(.b))
        #expect(fixed.expression.node.height == mod.expression.node.height)
    }
}
