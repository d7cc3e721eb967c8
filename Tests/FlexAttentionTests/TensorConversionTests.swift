@testable import FlexAttention
import Testing

@Suite("Tensor.converted(to:) and contiguous()")
struct TensorConversionTests {
    @Test("conversion rounds to nearest, ties to even, and copies")
    func rounds() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let values = (0..<60).map { _ in Float.random(in: -100...100, using: &rng) }
        let source = try Tensor(values, shape: [3, 4, 5])
        let half = try source.converted(to: .float16)
        let brain = try source.converted(to: .bfloat16)
        #expect(half.dtype == .float16 && half.shape == [3, 4, 5])
        #expect(half.floats() == values.map { Float(Float16($0)) }, "seed \(seed)")
        #expect(brain.floats() == values.map { BFloat16($0).float }, "seed \(seed)")
        #expect(try half.converted(to: .float32).floats() == half.floats(), "seed \(seed)")
        let same = try source.converted(to: .float32)
        #expect(same.storage !== source.storage && same.floats() == values, "seed \(seed)")
        try same.copy(from: Tensor(zeros: [3, 4, 5]))
        #expect(source.floats() == values, "seed \(seed): the conversion must not share memory")
    }

    @Test("a BSHD tensor stays BSHD; any other view comes back row-major")
    func keepsLayout() throws {
        let seed = freshSeed()
        let bshd = try Tensor.random(shape: [2, 3, 4, 5], layout: .bshd, seed: seed)
        let converted = try bshd.converted(to: .bfloat16)
        #expect(converted.strides == bshd.strides, "seed \(seed)")
        #expect(converted.floats() == bshd.floats().map { BFloat16($0).float }, "seed \(seed)")
        let permuted = try bshd.permuted([3, 1, 0, 2])
        let flat = try permuted.converted(to: .float32)
        #expect(flat.strides == Tensor.contiguousStrides(permuted.shape) && flat.floats() == permuted.floats())
    }

    @Test("contiguous() is the view itself when dense, else a row-major copy of the same dtype")
    func contiguous() throws {
        let seed = freshSeed()
        let dense = try Tensor.random(shape: [4, 6], dtype: .float16, seed: seed)
        let itself = try dense.contiguous()
        #expect(dense.isContiguous && itself.storage === dense.storage)
        let transposed = try dense.permuted([1, 0])
        #expect(!transposed.isContiguous)
        let copy = try transposed.contiguous()
        #expect(copy.dtype == .float16 && copy.isContiguous && copy.storage !== dense.storage)
        #expect(copy.floats() == transposed.floats(), "seed \(seed)")
        #expect(!(try Tensor(zeros: [1, 2, 3, 4], layout: .bshd)).isContiguous)
        #expect(try Tensor(zeros: [1, 1, 3, 4], layout: .bshd).isContiguous)  // one head: BSHD is BHSD
    }
}
