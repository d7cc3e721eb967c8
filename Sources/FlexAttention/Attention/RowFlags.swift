/// One flag per row `[b, h, s, :]` of a rank-4 tensor (or per element `[b, h, s]` of a rank-3 one), row-major.
struct RowFlags {
    let heads: Int
    let length: Int
    private(set) var flags: [Bool]

    /// No row flagged, for `batch × heads × length` rows.
    init(batch: Int, heads: Int, length: Int) {
        (self.heads, self.length) = (heads, length)
        flags = [Bool](repeating: false, count: batch * heads * length)
    }

    /// Whether some row is flagged.
    var isEmpty: Bool { !flags.contains(true) }

    subscript(b: Int, h: Int, s: Int) -> Bool {
        get { flags[(b * heads + h) * length + s] }
        set { flags[(b * heads + h) * length + s] = newValue }
    }

    /// Flags every row flagged in `other`, which has the same rows.
    mutating func formUnion(_ other: RowFlags) {
        for index in flags.indices where other.flags[index] { flags[index] = true }
    }

    /// Unflags every flagged row whose row-major index satisfies `predicate`.
    mutating func unflag(where predicate: (_ index: Int) throws -> Bool) rethrows {
        for index in flags.indices where try flags[index] && predicate(index) { flags[index] = false }
    }

    /// The row-major indices of the flagged rows.
    var flaggedIndices: [Int] { flags.indices.filter { flags[$0] } }

    /// Calls `body(b, h, s)` for every flagged row, in order.
    func forEach(_ body: (Int, Int, Int) throws -> Void) rethrows {
        for (index, flagged) in flags.enumerated() where flagged {
            try body(index / length / heads, index / length % heads, index % length)
        }
    }
}

extension RowFlags {
    /// Rows scanned per parallel work item: enough to amortise the hand-out, few enough to spread a single head.
    private static let rowsPerItem = 256

    /// The rows of a rank-4 tensor that hold NaN or ±∞. Reads the elements' bits (a value is non-finite exactly
    /// when its exponent bits are all set), so the scan runs at memory speed.
    init(nonFiniteRowsOf tensor: Tensor) {
        let rows = StridedRows(tensor)
        self.init(batch: tensor.shape[0], heads: tensor.shape[1], length: tensor.shape[2])
        let count = flags.count
        let (heads, length) = (heads, length)
        flags.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let target = SendablePointer(base)
            parallelFor((count + Self.rowsPerItem - 1) / Self.rowsPerItem) { item in
                for row in item * Self.rowsPerItem..<min(count, (item + 1) * Self.rowsPerItem) {
                    target.value[row] = !rows.isFinite(row / length / heads, row / length % heads, row % length)
                }
            }
        }
    }

    /// The elements of a log-sum-exp `[B, H, S]` that are NaN or +∞ (−∞, a row that keeps nothing, is not
    /// flagged): the row scan over it viewed as `[B, H, S, 1]`.
    init(invalidLogSumExp logSumExp: Tensor) throws {
        self.init(nonFiniteRowsOf: try Tensor(
            storage: logSumExp.storage, dtype: logSumExp.dtype, shape: logSumExp.shape + [1],
            strides: logSumExp.strides + [1], offset: logSumExp.offset))
        let (heads, length) = (heads, length)
        try unflag { index in
            try logSumExp.float(at: [index / length / heads, index / length % heads, index % length]) == -.infinity
        }
    }
}

extension StridedRows {
    /// Whether every element of the row `[b, h, s, :]` is finite.
    func isFinite(_ b: Int, _ h: Int, _ s: Int) -> Bool {
        let start = base + rowOffset(b, h, s) * dtype.byteSize
        switch dtype {
        case .float32:
            return Self.allFinite(
                start.assumingMemoryBound(to: UInt32.self), columns, strides.column, exponent: 0x7F80_0000)
        case .float16:
            return Self.allFinite(start.assumingMemoryBound(to: UInt16.self), columns, strides.column, exponent: 0x7C00)
        case .bfloat16:
            return Self.allFinite(start.assumingMemoryBound(to: UInt16.self), columns, strides.column, exponent: 0x7F80)
        }
    }

    /// Whether no element has all of `exponent`'s bits set: the largest masked word is below the mask. A max
    /// reduction without early exit, which the compiler vectorises.
    @inline(__always)
    private static func allFinite<Word: FixedWidthInteger & UnsignedInteger>(
        _ pointer: UnsafeMutablePointer<Word>, _ count: Int, _ stride: Int, exponent: Word
    ) -> Bool {
        var largest: Word = 0
        if stride == 1 {
            for c in 0..<count { largest = max(largest, pointer[c] & exponent) }
        } else {
            for c in 0..<count { largest = max(largest, pointer[c * stride] & exponent) }
        }
        return largest != exponent
    }
}
