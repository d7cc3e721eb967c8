extension Tensor {
    /// A new tensor of uniform values drawn from `range` with a SplitMix64 generator seeded by `seed`, rounded
    /// to `dtype`, so test inputs and benchmarks can be replayed from one number.
    ///
    /// Values are drawn in the layout's memory order, as ``init(_:shape:dtype:layout:)`` takes them.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` when `range` has a bound that is not finite or is
    ///   wider than a Float can measure; otherwise what ``init(zeros:dtype:layout:)`` throws.
    public static func random(
        shape: [Int], dtype: DType = .float32, layout: TensorLayout = .bhsd, in range: ClosedRange<Float> = -1...1,
        seed: UInt64
    ) throws -> Tensor {
        var generator = SplitMix64(seed: seed)
        return try random(shape: shape, dtype: dtype, layout: layout, in: range, using: &generator)
    }

    /// A new tensor of uniform values drawn from `range` with the caller's generator, rounded to `dtype`, for
    /// callers that already thread one generator through their setup.
    ///
    /// Values are drawn in the layout's memory order, as ``init(_:shape:dtype:layout:)`` takes them.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` when `range` has a bound that is not finite or is
    ///   wider than a Float can measure; otherwise what ``init(zeros:dtype:layout:)`` throws. Nothing is drawn
    ///   from `generator` when it throws.
    public static func random(
        shape: [Int], dtype: DType = .float32, layout: TensorLayout = .bhsd, in range: ClosedRange<Float> = -1...1,
        using generator: inout some RandomNumberGenerator
    ) throws -> Tensor {
        // Float.random(in:) traps on an infinite range; refuse it here instead.
        guard range.lowerBound.isFinite, range.upperBound.isFinite,
              (range.upperBound - range.lowerBound).isFinite
        else {
            throw FlexAttentionError.invalidArgument(
                "random values need a finite range, not \(range.lowerBound)...\(range.upperBound)")
        }
        let tensor = try Tensor(zeros: shape, dtype: dtype, layout: layout)
        // A fresh tensor is dense from offset 0, so memory order is storage order.
        for elementOffset in 0..<tensor.elementCount {
            tensor.store(Float.random(in: range, using: &generator), atElementOffset: elementOffset)
        }
        return tensor
    }
}
