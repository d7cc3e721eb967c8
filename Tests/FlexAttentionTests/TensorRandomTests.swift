@testable import FlexAttention
import Testing

@Suite("Tensor.random")
struct TensorRandomTests {
    @Test("one seed gives one tensor; the seeded form is SplitMix64 through the generator form")
    func seedReplays() throws {
        let seed = freshSeed()
        for dtype in DType.allCases {
            let a = try Tensor.random(shape: [2, 3, 4, 5], dtype: dtype, in: -2...3, seed: seed)
            let b = try Tensor.random(shape: [2, 3, 4, 5], dtype: dtype, in: -2...3, seed: seed)
            var generator = SplitMix64(seed: seed)
            let c = try Tensor.random(shape: [2, 3, 4, 5], dtype: dtype, in: -2...3, using: &generator)
            #expect(a.dtype == dtype && a.shape == [2, 3, 4, 5], "seed \(seed)")
            #expect(a.floats() == b.floats() && a.floats() == c.floats(), "seed \(seed)")
            #expect(a.floats().allSatisfy { (-2...3).contains($0) }, "seed \(seed)")
            #expect(Set(a.floats()).count > 60, "seed \(seed): values should vary")
            let other = try Tensor.random(shape: [2, 3, 4, 5], dtype: dtype, in: -2...3, seed: seed &+ 1)
            #expect(other.floats() != a.floats(), "seed \(seed)")
        }
    }

    @Test("values are drawn in memory order, rounded to the dtype")
    func drawnInMemoryOrder() throws {
        let seed = freshSeed()
        var generator = SplitMix64(seed: seed)
        let expected = (0..<120).map { _ in BFloat16(Float.random(in: -1...1, using: &generator)).float }
        let bshd = try Tensor.random(shape: [2, 3, 4, 5], dtype: .bfloat16, layout: .bshd, seed: seed)
        #expect(bshd.strides == Tensor.strides([2, 3, 4, 5], layout: .bshd), "seed \(seed)")
        #expect(bshd.floats() == (try Tensor(expected, shape: [2, 3, 4, 5], layout: .bshd)).floats(), "seed \(seed)")
    }

    @Test("an infinite range is an error and draws nothing", arguments: [
        -Float.infinity...0, 0...Float.infinity, -Float.greatestFiniteMagnitude...Float.greatestFiniteMagnitude,
    ])
    func infiniteRange(range: ClosedRange<Float>) throws {
        let seed = freshSeed()
        var generator = SplitMix64(seed: seed)
        #expect(throws: FlexAttentionError.self) {
            try Tensor.random(shape: [4], in: range, using: &generator)
        }
        var untouched = SplitMix64(seed: seed)
        #expect(generator.next() == untouched.next())
    }
}
