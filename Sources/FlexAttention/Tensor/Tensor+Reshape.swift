extension Tensor {
    /// The same elements, in the same row-major order, viewed with a new shape. Always a view sharing this
    /// tensor's storage, never a silent copy, so writes through either are seen by both.
    ///
    /// A view that is not ``isContiguous`` (a BSHD tensor, a permuted or narrowed view) cannot be reinterpreted;
    /// call ``contiguous()`` first to get a copy that can.
    /// - Throws: ``FlexAttentionError/nonPositiveDimension(tensor:shape:)`` for a negative extent,
    ///   ``FlexAttentionError/elementCountMismatch(expected:actual:)`` when the element counts differ,
    ///   ``FlexAttentionError/notContiguous(shape:strides:)`` when the view is not row-major contiguous.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 >= 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "reshaped tensor", shape: newShape)
        }
        try Tensor.requireElementCount(elementCount, for: newShape)
        guard isContiguous else { throw FlexAttentionError.notContiguous(shape: shape, strides: strides) }
        return try Tensor(
            storage: storage, dtype: dtype, shape: newShape, strides: Tensor.contiguousStrides(newShape),
            offset: offset)
    }
}
