extension Tensor {
    /// The indices `range` along `axis`, as a view sharing this tensor's storage: the shape shrinks to
    /// `range.count` on that axis and the offset moves to the first kept element. An empty range gives an empty
    /// view. Writing through it (``copy(from:)``) fills that slice of this tensor, as when appending to a KV cache.
    /// - Throws: ``FlexAttentionError/axisOutOfRange(axis:rank:)`` for an axis outside `0..<rank`,
    ///   ``FlexAttentionError/rangeOutOfBounds(range:axis:extent:)`` for a range outside `0...shape[axis]`.
    public func narrowed(axis: Int, range: Range<Int>) throws -> Tensor {
        guard shape.indices.contains(axis) else {
            throw FlexAttentionError.axisOutOfRange(axis: axis, rank: shape.count)
        }
        guard range.lowerBound >= 0, range.upperBound <= shape[axis] else {
            throw FlexAttentionError.rangeOutOfBounds(range: range, axis: axis, extent: shape[axis])
        }
        var newShape = shape
        newShape[axis] = range.count
        // An empty view reads nothing; it keeps this view's offset, which is known to lie in the storage.
        let newOffset = newShape.contains(0) ? offset : offset + range.lowerBound * strides[axis]
        return try Tensor(storage: storage, dtype: dtype, shape: newShape, strides: strides, offset: newOffset)
    }
}
