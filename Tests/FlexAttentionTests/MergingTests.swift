import Testing
@testable import FlexAttention

/// Merging attention over disjoint key sets gives attention over their union.
@Suite("Merging partial attention")
struct MergingTests {
    @Test("attention over key chunks, merged, equals attention over all keys; empty parts add nothing")
    func chunksMerge() throws {
        var rng = SeededRandom(seed: freshSeed())
        let q = try randomTensor([2, 4, 37, 24], rng: &rng)
        let k = try randomTensor([2, 2, 150, 24], rng: &rng)
        let v = try randomTensor([2, 2, 150, 16], rng: &rng)
        let attention = Attention()
        let whole = try attention.forward(query: q, key: k, value: v, options: .init(scoreMod: .softCap(5)))
        let bounds = [0, 60, 61, 150]
        var parts = try zip(bounds, bounds.dropFirst()).map { low, high in
            try attention.forward(
                query: q, key: k.narrowed(axis: 2, range: low..<high), value: v.narrowed(axis: 2, range: low..<high),
                options: .init(scoreMod: .softCap(5)))
        }
        let nothing = try attention.forward(
            query: q, key: k, value: v, options: .init(mask: MaskMod { _, _, _, kv in kv < 0 }))
        #expect(nothing.logSumExp.floats().allSatisfy { $0 == -.infinity })
        parts.insert(nothing, at: 1)
        let merged = try AttentionOutput.merging(parts)
        #expect(merged.output.shape == whole.output.shape && merged.output.dtype == whole.output.dtype)
        let outputError = zip(merged.output.floats(), whole.output.floats()).map { abs($0 - $1) }.max() ?? .nan
        let lseError = zip(merged.logSumExp.floats(), whole.logSumExp.floats()).map { abs($0 - $1) }.max() ?? .nan
        #expect(outputError < 1e-5 && lseError < 1e-5, "O error \(outputError), LSE error \(lseError)")
        #expect(try AttentionOutput.merging([nothing, nothing]).logSumExp.floats().allSatisfy { $0 == -.infinity })
        #expect(try AttentionOutput.merging([nothing, nothing]).output.floats().allSatisfy { $0 == 0 })
    }

    @Test("a NaN part poisons its rows only; no parts or different shapes are errors")
    func nanAndErrors() throws {
        let output = try Tensor([Float](repeating: 1, count: 2 * 3), shape: [1, 1, 2, 3])
        let finite = AttentionOutput(output: output, logSumExp: try Tensor([0.5, 1], shape: [1, 1, 2]))
        let poisoned = AttentionOutput(output: output, logSumExp: try Tensor([.nan, 2], shape: [1, 1, 2]))
        let merged = try AttentionOutput.merging([finite, poisoned])
        #expect(merged.output.floats()[0..<3].allSatisfy(\.isNaN) && merged.logSumExp.floats()[0].isNaN)
        #expect(merged.output.floats()[3..<6].allSatisfy { abs($0 - 1) < 1e-6 })
        #expect(throws: FlexAttentionError.self) { try AttentionOutput.merging([]) }
        let other = AttentionOutput(
            output: try Tensor(zeros: [1, 1, 3, 3]), logSumExp: try Tensor(zeros: [1, 1, 3]))
        #expect(throws: FlexAttentionError.self) { try AttentionOutput.merging([finite, other]) }
    }
}
