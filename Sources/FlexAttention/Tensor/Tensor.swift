/// How the axes of an attention tensor lie in memory. Both are read without copies: a BSHD tensor is a BHSD view
/// with the head and sequence strides swapped.
public enum TensorLayout: Sendable, Hashable {
    /// Batch, heads, sequence, head dim (the logical order).
    case bhsd
    /// Batch, sequence, heads, head dim (the usual order of a projection's output).
    case bshd
}

/// A strided view over typed memory: a dtype, a shape and per-axis strides (in elements) from an offset.
///
/// Attention takes rank-4 views in logical order `[B, H, S, D]`; any strides work, so BSHD memory is read
/// without a copy (see ``TensorLayout``). Views are cheap values that share their ``TensorStorage``.
///
/// An axis may have extent 0 (an empty KV cache, say): such a tensor has no elements and reads nothing, though
/// attention itself needs every size positive.
public struct Tensor: Sendable {
    /// Element type.
    public let dtype: DType
    /// Logical extent of each axis.
    public let shape: [Int]
    /// Elements between neighbours along each axis.
    public let strides: [Int]
    /// Index, in elements, of the first element within the storage.
    public let offset: Int
    /// The memory behind the view.
    public let storage: TensorStorage

    /// A view over existing storage, checked to stay inside it.
    /// - Throws: ``FlexAttentionError`` when the shape has a negative extent, the shape and strides have
    ///   different ranks, or any element would fall outside the storage (for an empty view: an offset outside
    ///   `0...capacity`).
    public init(storage: TensorStorage, dtype: DType, shape: [Int], strides: [Int], offset: Int = 0) throws {
        guard shape.count == strides.count else {
            throw FlexAttentionError.invalidArgument(
                "shape \(shape) and strides \(strides) must have the same number of dimensions")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "tensor", shape: shape)
        }
        guard Tensor.elementCount(of: shape) != nil else {
            throw FlexAttentionError.invalidArgument("shape \(shape) has more elements than an Int can count")
        }
        let capacity = storage.byteCount / dtype.byteSize
        if shape.contains(0) {
            guard offset >= 0, offset <= capacity else {
                throw FlexAttentionError.viewOutOfBounds(
                    tensor: "tensor", detail: "empty view's offset \(offset) is outside a buffer of \(capacity)")
            }
        } else {
            guard let span = stridedSpan(shape: shape, strides: strides, offset: offset) else {
                throw FlexAttentionError.viewOutOfBounds(tensor: "tensor", detail: "strides \(strides) overflow")
            }
            guard span.lowerBound >= 0, span.upperBound < capacity else {
                throw FlexAttentionError.viewOutOfBounds(
                    tensor: "tensor",
                    detail: "shape \(shape), strides \(strides), offset \(offset) reach elements \(span.lowerBound)..."
                        + "\(span.upperBound) of a buffer of \(capacity)")
            }
        }
        self.storage = storage
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A new zero-filled tensor of logical shape `shape`. With ``TensorLayout/bshd`` the rank-4 memory is laid
    /// out batch, sequence, heads, head dim, and the view is still indexed `[B, H, S, D]`.
    /// - Throws: ``FlexAttentionError`` for a negative extent, a shape too large to allocate, or a BSHD shape that
    ///   is not rank 4.
    public init(zeros shape: [Int], dtype: DType = .float32, layout: TensorLayout = .bhsd) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "tensor", shape: shape)
        }
        if layout == .bshd && shape.count != 4 {
            throw FlexAttentionError.wrongRank(tensor: "a BSHD tensor", expected: 4, actual: shape.count)
        }
        guard let count = Tensor.elementCount(of: shape), count <= Int(Int32.max) * 64 else {
            throw FlexAttentionError.invalidArgument("shape \(shape) is too large")
        }
        guard let storage = TensorStorage(zeroedByteCount: count * dtype.byteSize) else {
            throw FlexAttentionError.outOfMemory(byteCount: count * dtype.byteSize)
        }
        guard let strides = Tensor.strides(shape, layout: layout) else {
            throw FlexAttentionError.wrongRank(tensor: "a BSHD tensor", expected: 4, actual: shape.count)
        }
        try self.init(storage: storage, dtype: dtype, shape: shape, strides: strides)
    }

    /// A new tensor holding `values` rounded to `dtype`, given in the order the layout puts them in memory:
    /// row-major `[B, H, S, D]` for ``TensorLayout/bhsd``, `[B, S, H, D]` for ``TensorLayout/bshd`` (the bytes a
    /// projection's output already has), while `shape` is always the logical `[B, H, S, D]`.
    ///
    /// ``floats()`` reads back in logical order, so it returns `values` unchanged only for ``TensorLayout/bhsd``.
    /// - Throws: ``FlexAttentionError`` for a negative extent, a count of `values` other than the shape's, or a
    ///   BSHD shape that is not rank 4.
    public init(_ values: [Float], shape: [Int], dtype: DType = .float32, layout: TensorLayout = .bhsd) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "tensor", shape: shape)
        }
        try Tensor.requireElementCount(values.count, for: shape)
        try self.init(zeros: shape, dtype: dtype, layout: layout)
        // A fresh tensor is dense from offset 0, so memory order is storage order.
        for (elementOffset, value) in values.enumerated() {
            store(value, atElementOffset: elementOffset)
        }
    }

    /// Row-major strides for a contiguous tensor of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() {
            strides[axis] = strides[axis + 1] * shape[axis + 1]
        }
        return strides
    }

    /// Strides for a new tensor of logical shape `shape` whose memory is laid out as `layout`: row-major for
    /// ``TensorLayout/bhsd``, heads and sequence swapped for ``TensorLayout/bshd``. The one rule both ``Tensor``
    /// and ``DeviceTensor`` allocate by. Nil for a BSHD layout of a rank other than 4.
    static func strides(_ shape: [Int], layout: TensorLayout) -> [Int]? {
        switch layout {
        case .bhsd:
            return contiguousStrides(shape)
        case .bshd:
            guard shape.count == 4 else { return nil }
            let (h, s, d) = (shape[1], shape[2], shape[3])
            return [s * h * d, d, h * d, 1]
        }
    }

    /// The product of a shape's non-negative extents; `nil` when it overflows `Int` (0 whenever an extent is 0).
    static func elementCount(of shape: [Int]) -> Int? {
        if shape.contains(0) { return 0 }
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Checks that `count` supplied values fill `shape` exactly, before anything is allocated.
    /// - Throws: ``FlexAttentionError/elementCountMismatch(expected:actual:)``, or
    ///   ``FlexAttentionError/invalidArgument(_:)`` when the shape's element count overflows.
    static func requireElementCount(_ count: Int, for shape: [Int]) throws {
        guard let expected = elementCount(of: shape) else {
            throw FlexAttentionError.invalidArgument("shape \(shape) is too large")
        }
        guard count == expected else { throw FlexAttentionError.elementCountMismatch(expected: expected, actual: count) }
    }

    /// Number of elements in the view.
    public var elementCount: Int { shape.reduce(1, *) }

    /// The same elements with the axes reordered: axis `i` of the result is axis `order[i]` of this view.
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.sorted() == Array(shape.indices) else {
            throw FlexAttentionError.invalidArgument("\(order) is not a permutation of the axes of shape \(shape)")
        }
        return try Tensor(
            storage: storage, dtype: dtype, shape: order.map { shape[$0] }, strides: order.map { strides[$0] },
            offset: offset)
    }

    /// The view as a contiguous row-major ``DType/float32`` tensor: itself when it already is one, else a copy.
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` when the copy cannot be allocated.
    public func contiguousFloat32() throws -> Tensor {
        if dtype == .float32 && offset == 0 && strides == Tensor.contiguousStrides(shape) { return self }
        let copy = try Tensor(zeros: shape, dtype: .float32)
        var index = 0
        forEachOffset { elementOffset in
            copy.store(load(atElementOffset: elementOffset), atElementOffset: index)
            index += 1
        }
        return copy
    }

    /// All elements as Float32, in logical row-major order.
    public func floats() -> [Float] {
        var result = [Float]()
        result.reserveCapacity(elementCount)
        forEachOffset { result.append(load(atElementOffset: $0)) }
        return result
    }

    /// The element at a logical index (one entry per axis), as Float32.
    public func float(at index: [Int]) throws -> Float {
        guard index.count == shape.count, zip(index, shape).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
            throw FlexAttentionError.invalidArgument("index \(index) is outside shape \(shape)")
        }
        return load(atElementOffset: offset + zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
    }

    /// Calls `body` with the storage offset of every element (or of the first `limit`), in logical row-major order.
    func forEachOffset(limit: Int = .max, _ body: (Int) -> Void) {
        var index = [Int](repeating: 0, count: shape.count)
        var elementOffset = offset
        for _ in 0..<min(elementCount, max(limit, 0)) {
            body(elementOffset)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                elementOffset += strides[axis]
                if index[axis] < shape[axis] { break }
                elementOffset -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    func load(atElementOffset elementOffset: Int) -> Float {
        let base = storage.baseAddress
        switch dtype {
        case .float32: return base.load(fromByteOffset: elementOffset * 4, as: Float.self)
        case .float16: return Float(base.load(fromByteOffset: elementOffset * 2, as: Float16.self))
        case .bfloat16: return BFloat16(bitPattern: base.load(fromByteOffset: elementOffset * 2, as: UInt16.self)).float
        }
    }

    func store(_ value: Float, atElementOffset elementOffset: Int) {
        let base = storage.baseAddress
        switch dtype {
        case .float32: base.storeBytes(of: value, toByteOffset: elementOffset * 4, as: Float.self)
        case .float16: base.storeBytes(of: Float16(value), toByteOffset: elementOffset * 2, as: Float16.self)
        case .bfloat16:
            base.storeBytes(of: BFloat16(value).bitPattern, toByteOffset: elementOffset * 2, as: UInt16.self)
        }
    }
}

/// The lowest and highest storage index a strided view reaches, or `nil` when that arithmetic overflows.
package func stridedSpan(shape: [Int], strides: [Int], offset: Int) -> ClosedRange<Int>? {
    var (lowest, highest) = (offset, offset)
    for (extent, stride) in zip(shape, strides) {
        let (reach, overflow) = (extent - 1).multipliedReportingOverflow(by: stride)
        guard !overflow else { return nil }
        let (moved, movedOverflow) = (reach < 0 ? lowest : highest).addingReportingOverflow(reach)
        guard !movedOverflow else { return nil }
        if reach < 0 { lowest = moved } else { highest = moved }
    }
    return lowest...highest
}
