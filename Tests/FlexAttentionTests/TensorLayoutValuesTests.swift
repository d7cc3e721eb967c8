@testable import FlexAttention
import Testing

/// `Tensor(_:shape:dtype:layout:)` takes its values in the layout's memory order; these pin that rule.
@Suite("Tensor values follow the layout's memory order")
struct TensorLayoutValuesTests {
    @Test("BSHD values are read as [B, S, H, D] and indexed as [B, H, S, D]")
    func bshdValuesAreInMemoryOrder() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (b, h, s, d) = (Int.random(in: 1...3, using: &rng), Int.random(in: 2...4, using: &rng),
                            Int.random(in: 2...5, using: &rng), Int.random(in: 1...6, using: &rng))
        let values = (0..<(b * h * s * d)).map { _ in Float.random(in: -4...4, using: &rng) }
        let tensor = try Tensor(values, shape: [b, h, s, d], layout: .bshd)
        var expected = [Float]()
        for bi in 0..<b { for hi in 0..<h { for si in 0..<s { for di in 0..<d {
            let want = values[((bi * s + si) * h + hi) * d + di]
            expected.append(want)
            #expect(try tensor.float(at: [bi, hi, si, di]) == want, "seed \(seed)")
        } } } }
        #expect(tensor.floats() == expected, "seed \(seed)")
        // The bytes are the values as given.
        let bytes = UnsafeBufferPointer(
            start: tensor.storage.baseAddress.assumingMemoryBound(to: Float.self), count: values.count)
        #expect(Array(bytes) == values, "seed \(seed)")
    }

    @Test("BHSD values (the default) are read in logical row-major order")
    func bhsdValuesAreRowMajor() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let shape = [2, 3, 4, 5]
        let values = (0..<120).map { _ in Float.random(in: -4...4, using: &rng) }
        let tensor = try Tensor(values, shape: shape)
        #expect(tensor.floats() == values, "seed \(seed)")
        #expect(try tensor.float(at: [1, 2, 3, 4]) == values[((1 * 3 + 2) * 4 + 3) * 5 + 4], "seed \(seed)")
        #expect(try Tensor(values, shape: shape, layout: .bhsd).floats() == values, "seed \(seed)")
    }

    @Test("a BSHD tensor equals the BHSD tensor of the same values with heads and sequence swapped")
    func bshdMatchesPermutedRowMajor() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let values = (0..<(2 * 5 * 3 * 4)).map { _ in Float.random(in: -4...4, using: &rng) }
        let bshd = try Tensor(values, shape: [2, 3, 5, 4], dtype: .bfloat16, layout: .bshd)
        let rowMajorBSHD = try Tensor(values, shape: [2, 5, 3, 4], dtype: .bfloat16)
        #expect(bshd.floats() == (try rowMajorBSHD.permuted([0, 2, 1, 3])).floats(), "seed \(seed)")
    }
}
