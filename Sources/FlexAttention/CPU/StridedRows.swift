/// Raw, unchecked access to the rows `[b, h, s, :]` of a rank-4 tensor, for the CPU loops. Built only from
/// tensors whose shape and bounds were validated.
struct StridedRows: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let dtype: DType
    let strides: (batch: Int, head: Int, sequence: Int, column: Int)
    let columns: Int

    init(_ tensor: Tensor) {
        base = tensor.storage.baseAddress + tensor.offset * tensor.dtype.byteSize
        dtype = tensor.dtype
        strides = (tensor.strides[0], tensor.strides[1], tensor.strides[2], tensor.strides[3])
        columns = tensor.shape[3]
    }

    /// Element offset of `[b, h, s, 0]`.
    @inline(__always)
    func rowOffset(_ b: Int, _ h: Int, _ s: Int) -> Int {
        b * strides.batch + h * strides.head + s * strides.sequence
    }

    /// When the tensor is Float32, a pointer to `[b, h, s, 0]` (its columns `strides.column` apart), else `nil`.
    @inline(__always)
    func floatRow(_ b: Int, _ h: Int, _ s: Int) -> UnsafePointer<Float>? {
        guard dtype == .float32 else { return nil }
        return UnsafePointer(base.assumingMemoryBound(to: Float.self) + rowOffset(b, h, s))
    }

    /// Writes `row[c] · factor` for every column, as Float32, to `destination[c · step]`.
    @inline(__always)
    func read(_ b: Int, _ h: Int, _ s: Int, into destination: UnsafeMutablePointer<Float>, step: Int = 1,
              factor: Float = 1) {
        read(atOffset: rowOffset(b, h, s), into: destination, step: step, factor: factor)
    }

    /// ``read(_:_:_:into:step:factor:)`` of the row that starts `start` elements into the tensor.
    @inline(__always)
    func read(atOffset start: Int, into destination: UnsafeMutablePointer<Float>, step: Int = 1, factor: Float = 1) {
        let stride = strides.column
        switch dtype {
        case .float32:
            let source = base.assumingMemoryBound(to: Float.self) + start
            // Contiguous on both sides: a loop the compiler vectorises.
            if stride == 1 && step == 1 {
                for c in 0..<columns { destination[c] = source[c] * factor }
            } else {
                for c in 0..<columns { destination[c * step] = source[c * stride] * factor }
            }
        case .float16:
            let source = base.assumingMemoryBound(to: Float16.self) + start
            if stride == 1 && step == 1 {
                for c in 0..<columns { destination[c] = Float(source[c]) * factor }
            } else {
                for c in 0..<columns { destination[c * step] = Float(source[c * stride]) * factor }
            }
        case .bfloat16:
            let source = base.assumingMemoryBound(to: UInt16.self) + start
            if stride == 1 && step == 1 {
                for c in 0..<columns { destination[c] = Float(bitPattern: UInt32(source[c]) << 16) * factor }
            } else {
                for c in 0..<columns {
                    destination[c * step] = Float(bitPattern: UInt32(source[c * stride]) << 16) * factor
                }
            }
        }
    }

    /// Stores `source[c · step]` for every column, rounded to the tensor's dtype.
    @inline(__always)
    func write(_ b: Int, _ h: Int, _ s: Int, from source: UnsafePointer<Float>, step: Int = 1) {
        let start = rowOffset(b, h, s)
        let stride = strides.column
        switch dtype {
        case .float32:
            let target = base.assumingMemoryBound(to: Float.self) + start
            if stride == 1 && step == 1 {
                target.update(from: source, count: columns)
            } else {
                for c in 0..<columns { target[c * stride] = source[c * step] }
            }
        case .float16:
            let target = base.assumingMemoryBound(to: Float16.self) + start
            for c in 0..<columns { target[c * stride] = Float16(source[c * step]) }
        case .bfloat16:
            let target = base.assumingMemoryBound(to: UInt16.self) + start
            for c in 0..<columns { target[c * stride] = BFloat16(source[c * step]).bitPattern }
        }
    }
}

extension StridedRows {
    /// Rows `rows` of (b, h) as a GEMM operand: `(pointer, row stride, column stride)`. Read in place when the
    /// tensor is Float32 — and, with `contiguousLanes`, only when its columns are contiguous and exactly that
    /// many, as a B operand needs; otherwise converted to `scratch`, rows `ld` apart (padding left as it was).
    func operand(
        _ b: Int, _ h: Int, rows: Range<Int>, scratch: UnsafeMutablePointer<Float>, ld: Int,
        contiguousLanes: Int? = nil
    ) -> (UnsafePointer<Float>, row: Int, column: Int) {
        let inPlaceLayout = contiguousLanes.map { strides.column == 1 && columns == $0 } ?? true
        if inPlaceLayout, let first = floatRow(b, h, rows.lowerBound) {
            return (first, strides.sequence, strides.column)
        }
        for (i, row) in rows.enumerated() { read(b, h, row, into: scratch + i * ld) }
        return (UnsafePointer(scratch), ld, 1)
    }
}

/// Rounds `count` up to a multiple of 16, the lane quantum of ``TileKernels``.
@inline(__always)
func paddedToLanes(_ count: Int) -> Int { (count + 15) & ~15 }

/// A scratch buffer of Floats for one work item, zero-filled so padding lanes never hold NaN.
struct Scratch: ~Copyable {
    let pointer: UnsafeMutablePointer<Float>

    init(_ count: Int) {
        pointer = .allocate(capacity: max(count, 16))
        pointer.initialize(repeating: 0, count: max(count, 16))
    }

    deinit { pointer.deallocate() }
}
