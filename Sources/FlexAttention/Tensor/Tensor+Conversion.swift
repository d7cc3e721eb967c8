extension Tensor {
    /// A new tensor of the same shape holding these elements as `dtype`, rounded to nearest, ties to even, as
    /// every conversion in the library rounds. The copy keeps a BHSD or BSHD layout (other views come back
    /// row-major) and never shares storage with this one, even when `dtype` is unchanged.
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` when the copy cannot be allocated.
    public func converted(to dtype: DType) throws -> Tensor {
        let result = try Tensor(zeros: shape, dtype: dtype, layout: denseLayout ?? .bhsd)
        try result.copy(from: self)  // fresh storage: never overlaps, so no second copy
        return result
    }
}
