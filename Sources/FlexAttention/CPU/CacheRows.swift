/// Raw access to the keys or values of a ``KVCache`` by (sequence, KV head, position), contiguous or paged, for
/// the CPU decode loop. Built only from a checked cache.
struct CacheRows: @unchecked Sendable {
    let rows: StridedRows
    /// Elements between consecutive positions of one storage run (a sequence's rows, or one page's slots).
    let positionStride: Int
    private let headStride: Int
    private let outerStride: Int
    private let pageTable: PageTable?

    init(_ storage: Tensor, pageTable: PageTable?) {
        rows = StridedRows(storage)
        let s = storage.strides
        // Contiguous [B, Hkv, capacity, D]; paged [pages, pageSize, Hkv, D].
        (outerStride, headStride, positionStride) = pageTable == nil ? (s[0], s[1], s[2]) : (s[0], s[2], s[1])
        self.pageTable = pageTable
    }

    /// Element offset of token `position` of `sequence`, head `head`.
    @inline(__always)
    func offset(sequence: Int, head: Int, position: Int) -> Int {
        guard let pageTable else { return sequence * outerStride + head * headStride + position * positionStride }
        let page = Int(pageTable.page(sequence: sequence, position: position))
        return page * outerStride + head * headStride + (position % pageTable.pageSize) * positionStride
    }

    /// Whether `positions` lie in one storage run, `positionStride` apart.
    @inline(__always)
    func isOneRun(_ positions: Range<Int>) -> Bool {
        guard let pageTable else { return true }
        return positions.lowerBound / pageTable.pageSize == (positions.upperBound - 1) / pageTable.pageSize
    }

    /// Rows `positions` of (sequence, head) with contiguous columns, as `(pointer, row stride)`: read in place when
    /// Float32, in one run, with contiguous columns and — when `paddedColumns` is given — exactly that many, as a
    /// GEMM's B operand needs; otherwise converted to `scratch`, rows `ld` apart (padding left as it was).
    func operand(
        sequence: Int, head: Int, positions: Range<Int>, scratch: UnsafeMutablePointer<Float>, ld: Int,
        paddedColumns: Int? = nil
    ) -> (UnsafePointer<Float>, row: Int) {
        let inPlaceLayout = rows.strides.column == 1 && (paddedColumns.map { $0 == rows.columns } ?? true)
        if rows.dtype == .float32 && inPlaceLayout && isOneRun(positions) {
            let first = rows.base.assumingMemoryBound(to: Float.self)
                + offset(sequence: sequence, head: head, position: positions.lowerBound)
            return (UnsafePointer(first), positionStride)
        }
        for (i, position) in positions.enumerated() {
            rows.read(atOffset: offset(sequence: sequence, head: head, position: position), into: scratch + i * ld)
        }
        return (UnsafePointer(scratch), ld)
    }
}
