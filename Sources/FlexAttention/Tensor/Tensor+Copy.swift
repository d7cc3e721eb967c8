extension Tensor {
    /// Writes `source`'s elements into this view, element for element in logical order: any strides on either
    /// side, dtype rounded as ``init(_:shape:dtype:layout:)`` rounds. Filling a slice of a preallocated tensor
    /// (a KV cache, say) is this on a ``narrowed(axis:range:)`` view.
    ///
    /// Views that share memory are handled: the source is read in full before anything is written.
    /// - Throws: ``FlexAttentionError/shapeMismatch(expected:actual:tensor:)`` when the shapes differ, or
    ///   ``FlexAttentionError/outOfMemory(byteCount:)`` when overlapping memory needs a copy that cannot be had;
    ///   then nothing is written.
    public func copy(from source: Tensor) throws {
        guard source.shape == shape else {
            throw FlexAttentionError.shapeMismatch(expected: shape, actual: source.shape, tensor: "copy source")
        }
        let reads = overlapsMemory(of: source) ? try source.converted(to: source.dtype) : source
        forEachOffsetPair(reads) { target, from in
            store(reads.load(atElementOffset: from), atElementOffset: target)
        }
    }

    /// Whether the two views' storages share any bytes (the same storage, or wrapped memory that overlaps).
    func overlapsMemory(of other: Tensor) -> Bool {
        let (a, b) = (storage.baseAddress, other.storage.baseAddress)
        return a < b + other.storage.byteCount && b < a + storage.byteCount
    }

    /// Walks this view and `other` (of the same shape) together in logical row-major order, calling `body` with
    /// each pair of storage offsets.
    func forEachOffsetPair(_ other: Tensor, _ body: (_ mine: Int, _ other: Int) -> Void) {
        var index = [Int](repeating: 0, count: shape.count)
        var (mine, theirs) = (offset, other.offset)
        for _ in 0..<elementCount {
            body(mine, theirs)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                mine += strides[axis]
                theirs += other.strides[axis]
                if index[axis] < shape[axis] { break }
                mine -= strides[axis] * shape[axis]
                theirs -= other.strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
