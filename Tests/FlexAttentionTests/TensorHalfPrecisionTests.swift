@testable import FlexAttention
import Testing

@Suite("Float16 and BFloat16 tensors")
struct TensorHalfPrecisionTests {
    @Test("Float16 and BFloat16 values go in and come out bit for bit, NaN payloads included")
    func bitExact() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let bits = (0..<60).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
        let half = try Tensor(float16: bits.map(Float16.init(bitPattern:)), shape: [3, 4, 5])
        #expect(half.dtype == .float16 && half.shape == [3, 4, 5])
        #expect(half.float16Values().map(\.bitPattern) == bits, "seed \(seed)")
        let brain = try Tensor(bfloat16: bits.map(BFloat16.init(bitPattern:)), shape: [3, 4, 5])
        #expect(brain.dtype == .bfloat16)
        #expect(brain.bfloat16Values().map(\.bitPattern) == bits, "seed \(seed)")
        let finite = bits.map(BFloat16.init(bitPattern:)).filter { $0.float.isFinite }.map(\.float)
        #expect(brain.floats().filter(\.isFinite) == finite, "seed \(seed)")
    }

    @Test("values follow the layout's memory order; extraction is in logical order")
    func layoutOrder() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let values = (0..<120).map { _ in Float16(Float.random(in: -8...8, using: &rng)) }
        let bshd = try Tensor(float16: values, shape: [2, 3, 4, 5], layout: .bshd)
        let expected = try Tensor(values.map(Float.init), shape: [2, 4, 3, 5]).permuted([0, 2, 1, 3]).floats()
        #expect(bshd.float16Values().map(Float.init) == expected, "seed \(seed)")
        let brain = try Tensor(bfloat16: values.map { BFloat16(Float($0)) }, shape: [2, 3, 4, 5], layout: .bshd)
        #expect(brain.bfloat16Values().map(\.float) == expected.map { BFloat16($0).float }, "seed \(seed)")
    }

    @Test("extraction from another dtype rounds to nearest")
    func extractionRounds() throws {
        let seed = freshSeed()
        let tensor = try Tensor.random(shape: [64], in: -1000...1000, seed: seed)
        #expect(tensor.float16Values() == tensor.floats().map { Float16($0) }, "seed \(seed)")
        #expect(tensor.bfloat16Values() == tensor.floats().map { BFloat16($0) }, "seed \(seed)")
        #expect(throws: FlexAttentionError.elementCountMismatch(expected: 6, actual: 5)) {
            try Tensor(float16: [1, 2, 3, 4, 5], shape: [2, 3])
        }
        #expect(throws: FlexAttentionError.wrongRank(tensor: "a BSHD tensor", expected: 4, actual: 2)) {
            try Tensor(bfloat16: [BFloat16](repeating: BFloat16(1), count: 6), shape: [2, 3], layout: .bshd)
        }
    }
}
