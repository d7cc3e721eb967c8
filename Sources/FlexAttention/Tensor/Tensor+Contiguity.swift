extension Tensor {
    /// Whether the elements lie row-major with no gaps from ``offset``, so the view can be reinterpreted
    /// (``reshaped(_:)``) or handed to code that wants dense memory. Axes of extent 1 may have any stride; an
    /// empty tensor is contiguous.
    public var isContiguous: Bool {
        if shape.contains(0) { return true }
        var expected = 1
        for axis in shape.indices.reversed() where shape[axis] != 1 {
            guard strides[axis] == expected else { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// The view itself when it is already ``isContiguous``, else a row-major copy with the same dtype, so
    /// operations that need dense memory work on any view without changing its element type.
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` when the copy cannot be allocated.
    public func contiguous() throws -> Tensor {
        if isContiguous { return self }
        let copy = try Tensor(zeros: shape, dtype: dtype)
        try copy.copy(from: self)
        return copy
    }

    /// The layout whose fresh allocation has exactly this view's strides, or `nil` for any other view; new
    /// tensors derived from this one keep it.
    var denseLayout: TensorLayout? {
        if strides == Tensor.contiguousStrides(shape) { return .bhsd }
        if shape.count == 4, strides == Tensor.strides(shape, layout: .bshd) { return .bshd }
        return nil
    }
}
