@testable import FlexAttention
import Testing

/// `reshaped`, `narrowed` and `copy(from:)`: views that share storage and the one way to write into them.
@Suite("Tensor views")
struct TensorViewTests {
    /// Every logical index of `shape`, in row-major order.
    func indices(_ shape: [Int]) -> [[Int]] {
        shape.reduce([[]]) { prefixes, extent in prefixes.flatMap { prefix in (0..<extent).map { prefix + [$0] } } }
    }

    @Test("reshaped is a view of the same row-major elements")
    func reshapedShares() throws {
        let seed = freshSeed()
        let tensor = try Tensor.random(shape: [2, 3, 4], seed: seed)
        let flat = try tensor.reshaped([6, 4])
        #expect(flat.shape == [6, 4] && flat.strides == [4, 1] && flat.storage === tensor.storage)
        #expect(flat.floats() == tensor.floats(), "seed \(seed)")
        let replacement = try Tensor.random(shape: [6, 4], seed: seed &+ 1)
        try flat.copy(from: replacement)
        #expect(tensor.floats() == replacement.floats(), "seed \(seed): writes through the view are shared")
        // A narrowed slice along the first axis is still contiguous, from an offset.
        let slice = try tensor.narrowed(axis: 0, range: 1..<2)
        #expect(try slice.reshaped([12]).floats() == Array(replacement.floats()[12..<24]), "seed \(seed)")
    }

    @Test("reshaped refuses non-contiguous views, other counts and negative extents")
    func reshapedErrors() throws {
        let bshd = try Tensor(zeros: [1, 2, 3, 4], layout: .bshd)
        #expect(throws: FlexAttentionError.notContiguous(shape: [1, 2, 3, 4], strides: [24, 4, 8, 1])) {
            try bshd.reshaped([24])
        }
        let dense = try Tensor(zeros: [2, 3])
        #expect(throws: FlexAttentionError.elementCountMismatch(expected: 8, actual: 6)) { try dense.reshaped([2, 4]) }
        #expect(throws: FlexAttentionError.nonPositiveDimension(tensor: "reshaped tensor", shape: [-2, -3])) {
            try dense.reshaped([-2, -3])
        }
    }

    @Test("narrowed keeps exactly the elements in the range, in both layouts", arguments: [TensorLayout.bhsd, .bshd])
    func narrowedSelects(layout: TensorLayout) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let shape = [2, 3, 5, 4]
        let tensor = try Tensor.random(shape: shape, dtype: .float16, layout: layout, seed: seed)
        for axis in 0..<4 {
            let lower = Int.random(in: 0...shape[axis], using: &rng)
            let range = lower..<Int.random(in: lower...shape[axis], using: &rng)
            let view = try tensor.narrowed(axis: axis, range: range)
            var expectedShape = shape
            expectedShape[axis] = range.count
            let expected = try indices(shape).filter { range.contains($0[axis]) }.map { try tensor.float(at: $0) }
            #expect(view.shape == expectedShape && view.storage === tensor.storage, "seed \(seed)")
            #expect(view.floats() == expected, "seed \(seed), axis \(axis), range \(range)")
        }
    }

    @Test("narrowed refuses axes and ranges outside the tensor")
    func narrowedErrors() throws {
        let tensor = try Tensor(zeros: [2, 3, 5, 4])
        #expect(throws: FlexAttentionError.axisOutOfRange(axis: 4, rank: 4)) {
            try tensor.narrowed(axis: 4, range: 0..<1)
        }
        #expect(throws: FlexAttentionError.axisOutOfRange(axis: -1, rank: 4)) {
            try tensor.narrowed(axis: -1, range: 0..<1)
        }
        #expect(throws: FlexAttentionError.rangeOutOfBounds(range: 2..<6, axis: 2, extent: 5)) {
            try tensor.narrowed(axis: 2, range: 2..<6)
        }
        #expect(throws: FlexAttentionError.rangeOutOfBounds(range: -1..<2, axis: 1, extent: 3)) {
            try tensor.narrowed(axis: 1, range: -1..<2)
        }
    }

    @Test("copy(from:) fills a slice of a cache, converting dtype, across layouts")
    func copyIntoSlice() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let cache = try Tensor(zeros: [1, 2, 8, 4], dtype: .bfloat16, layout: .bshd)
        let start = Int.random(in: 0...5, using: &rng)
        let step = try Tensor.random(shape: [1, 2, 3, 4], seed: seed)  // float32, BHSD
        try cache.narrowed(axis: 2, range: start..<(start + 3)).copy(from: step)
        for index in indices([1, 2, 8, 4]) {
            let s = index[2]
            let want = (start..<(start + 3)).contains(s)
                ? BFloat16(try step.float(at: [0, index[1], s - start, index[3]])).float : 0
            #expect(try cache.float(at: index) == want, "seed \(seed), index \(index)")
        }
    }

    @Test("copy(from:) between overlapping views reads the source before writing")
    func copyOverlapping() throws {
        let seed = freshSeed()
        let square = try Tensor.random(shape: [5, 5], seed: seed)
        let before = square.floats()
        try square.copy(from: square.permuted([1, 0]))
        #expect(square.floats() == indices([5, 5]).map { before[$0[1] * 5 + $0[0]] }, "seed \(seed)")
    }

    @Test("copy(from:) refuses another shape and writes nothing")
    func copyShapeMismatch() throws {
        let seed = freshSeed()
        let target = try Tensor.random(shape: [2, 3], seed: seed)
        let before = target.floats()
        #expect(throws: FlexAttentionError.shapeMismatch(expected: [2, 3], actual: [3, 2], tensor: "copy source")) {
            try target.copy(from: Tensor(zeros: [3, 2]))
        }
        #expect(target.floats() == before)
    }
}
