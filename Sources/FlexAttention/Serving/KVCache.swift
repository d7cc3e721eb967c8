/// The keys and values of a batch of sequences being decoded, in host memory, contiguous or paged.
///
/// - Contiguous: keys `[B, Hkv, capacity, D]` and values `[B, Hkv, capacity, Dv]` (any strides, BSHD memory
///   included): sequence `b` keeps its tokens in its own rows.
/// - Paged: pools of pages, keys `[pages, pageSize, Hkv, D]` and values `[pages, pageSize, Hkv, Dv]`, and a
///   ``PageTable`` saying which pages hold each sequence's tokens (token `t` of sequence `b` is slot
///   `t % pageSize` of page `table[b, t / pageSize]`).
///
/// ``lengths`` says how many tokens each sequence holds. Slots past a sequence's length may hold anything, NaN
/// included; attention never reads them. ``append(keys:values:)`` writes new tokens in place and grows the
/// lengths, assigning free pages as needed.
///
/// ```swift
/// var cache = try KVCache(batch: 4, kvHeads: 8, headDim: 128, pageCount: 1024, pageSize: 16,
///                         maxPagesPerSequence: 256, dtype: .bfloat16)
/// try cache.append(keys: promptKeys, values: promptValues)      // [4, 8, promptLength, 128]
/// let step = try Attention().decode(query: q, cache: cache)      // q: [4, 32, 1, 128]
/// ```
public struct KVCache: Sendable {
    /// The keys: `[B, Hkv, capacity, D]`, or the key page pool `[pages, pageSize, Hkv, D]`.
    public let keys: Tensor
    /// The values: `[B, Hkv, capacity, Dv]`, or the value page pool `[pages, pageSize, Hkv, Dv]`.
    public let values: Tensor
    var index: KVCacheIndex

    /// A contiguous cache over existing tensors, holding `lengths[b]` tokens of sequence `b`.
    /// - Throws: ``FlexAttentionError`` for tensors that are not rank 4, disagree on batch, heads or capacity, or
    ///   lengths outside `0...capacity`.
    public init(keys: Tensor, values: Tensor, lengths: [Int]) throws {
        try Self.checkContiguous(keys: keys.shape, values: values.shape, lengths: lengths)
        self.keys = keys
        self.values = values
        index = try KVCacheIndex(capacity: keys.shape[2], lengths: lengths, pageTable: nil)
    }

    /// A paged cache over existing page pools.
    /// - Throws: ``FlexAttentionError`` for pools that are not rank 4 or disagree with each other or the table,
    ///   or lengths outside `0...capacity` or reaching an unassigned page.
    public init(keyPages: Tensor, valuePages: Tensor, pageTable: PageTable, lengths: [Int]) throws {
        try Self.checkPaged(keyPages: keyPages.shape, valuePages: valuePages.shape, pageTable: pageTable)
        keys = keyPages
        values = valuePages
        index = try KVCacheIndex(capacity: pageTable.capacity, lengths: lengths, pageTable: pageTable)
    }

    /// An empty contiguous cache of zeros.
    /// - Throws: ``FlexAttentionError`` for a non-positive size or one too large to allocate.
    public init(
        batch: Int, kvHeads: Int, capacity: Int, headDim: Int, valueDim: Int? = nil, dtype: DType = .float32,
        layout: TensorLayout = .bhsd
    ) throws {
        try self.init(
            keys: Tensor(zeros: [batch, kvHeads, capacity, headDim], dtype: dtype, layout: layout),
            values: Tensor(zeros: [batch, kvHeads, capacity, valueDim ?? headDim], dtype: dtype, layout: layout),
            lengths: [Int](repeating: 0, count: max(batch, 0)))
    }

    /// An empty paged cache: pools of zeros and a table with no page assigned.
    /// - Throws: ``FlexAttentionError`` for a page size outside 1...256, a non-positive size or one too large.
    public init(
        batch: Int, kvHeads: Int, headDim: Int, valueDim: Int? = nil, pageCount: Int, pageSize: Int,
        maxPagesPerSequence: Int, dtype: DType = .float32
    ) throws {
        let table = try PageTable(
            batch: batch, maxPagesPerSequence: maxPagesPerSequence, pageCount: pageCount, pageSize: pageSize)
        try self.init(
            keyPages: Tensor(zeros: [pageCount, pageSize, kvHeads, headDim], dtype: dtype),
            valuePages: Tensor(zeros: [pageCount, pageSize, kvHeads, valueDim ?? headDim], dtype: dtype),
            pageTable: table, lengths: [Int](repeating: 0, count: batch))
    }

    /// Tokens held by each sequence.
    public var lengths: [Int] { index.lengths }
    /// Where the tokens live when the cache is paged; nil when it is contiguous.
    public var pageTable: PageTable? { index.pageTable }
    /// Sequences.
    public var batch: Int { index.batch }
    /// Tokens each sequence can hold.
    public var capacity: Int { index.capacity }
    /// Key/value heads.
    public var kvHeads: Int { keys.shape[pageTable == nil ? 1 : 2] }
    /// Elements per key.
    public var headDim: Int { keys.shape[3] }
    /// Elements per value.
    public var valueDim: Int { values.shape[3] }

    /// Writes `keys` and `values` (`[B, Hkv, n, D]` and `[B, Hkv, n, Dv]`, any dtype) after each sequence's tokens
    /// and grows every length by `n`, assigning free pages where a paged sequence needs them.
    /// - Throws: ``FlexAttentionError`` for tensors of another shape,
    ///   ``FlexAttentionError/cacheFull(sequence:length:capacity:)`` when a sequence would outgrow the cache and
    ///   ``FlexAttentionError/outOfPages(needed:free:)`` when the pool has too few free pages; then nothing is written.
    public mutating func append(keys newKeys: Tensor, values newValues: Tensor) throws {
        let count = newKeys.shape.count == 4 ? newKeys.shape[2] : 0
        try Self.checkTokens(newKeys.shape, expected: [batch, kvHeads, count, headDim], name: "appended keys")
        try Self.checkTokens(newValues.shape, expected: [batch, kvHeads, count, valueDim], name: "appended values")
        let grown = try index.appending(count)
        try grown.forEachRun(from: index.lengths, count: count) { b, tokens, outer, rows in
            try cacheRows(keys, outer: outer, rows: rows).copy(from: tokenRows(newKeys, batch: b, tokens: tokens))
            try cacheRows(values, outer: outer, rows: rows).copy(from: tokenRows(newValues, batch: b, tokens: tokens))
        }
        index = grown
    }

    /// Empties `sequence` and, when paged, returns its pages to the pool.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a sequence outside the batch.
    public mutating func release(sequence: Int) throws {
        index = try index.releasing(sequence: sequence)
    }

    /// The cache's `[n, Hkv, D]` rows `rows` of sequence or page `outer`, as `[1, Hkv, n, D]`.
    private func cacheRows(_ storage: Tensor, outer: Int, rows: Range<Int>) throws -> Tensor {
        let s = storage.strides
        if pageTable == nil {
            return try storage.narrowed(axis: 0, range: outer..<outer + 1).narrowed(axis: 2, range: rows)
        }
        // A page is [pageSize, Hkv, D]: view its slots as [1, Hkv, n, D] by swapping the slot and head strides.
        return try Tensor(
            storage: storage.storage, dtype: storage.dtype, shape: [1, storage.shape[2], rows.count, storage.shape[3]],
            strides: [s[0], s[2], s[1], s[3]], offset: storage.offset + outer * s[0] + rows.lowerBound * s[1])
    }

    /// Tokens `tokens` of sequence `b` of `[B, Hkv, n, D]` new tokens, as `[1, Hkv, tokens.count, D]`.
    private func tokenRows(_ tokens: Tensor, batch b: Int, tokens range: Range<Int>) throws -> Tensor {
        try tokens.narrowed(axis: 0, range: b..<b + 1).narrowed(axis: 2, range: range)
    }

    static func checkTokens(_ shape: [Int], expected: [Int], name: String) throws {
        guard shape == expected else {
            throw FlexAttentionError.shapeMismatch(expected: expected, actual: shape, tensor: name)
        }
    }

    /// Checks contiguous keys `[B, Hkv, capacity, D]` and values `[B, Hkv, capacity, Dv]` against each other and the
    /// lengths (host and device caches alike).
    static func checkContiguous(keys: [Int], values: [Int], lengths: [Int]) throws {
        try checkPair(keys: keys, values: values, names: ("B", "Hkv", "capacity"))
        guard keys[0] == lengths.count else {
            throw FlexAttentionError.invalidArgument("\(lengths.count) lengths for a cache of \(keys[0]) sequences")
        }
    }

    /// Checks page pools `[pages, pageSize, Hkv, D]` and `[…, Dv]` against each other and the page table.
    static func checkPaged(keyPages: [Int], valuePages: [Int], pageTable: PageTable) throws {
        try checkPair(keys: keyPages, values: valuePages, names: ("pages", "pageSize", "Hkv"))
        guard keyPages[0] == pageTable.pageCount, keyPages[1] == pageTable.pageSize else {
            throw FlexAttentionError.invalidArgument(
                "pools of \(keyPages[0]) pages of \(keyPages[1]) tokens for a page table of"
                    + " \(pageTable.pageCount) pages of \(pageTable.pageSize)")
        }
    }

    /// Checks that both shapes are rank 4, positive, and agree on their first three axes.
    private static func checkPair(keys: [Int], values: [Int], names: (String, String, String)) throws {
        for (shape, name) in [(keys, "keys"), (values, "values")] where shape.count != 4 {
            throw FlexAttentionError.wrongRank(tensor: name, expected: 4, actual: shape.count)
        }
        for (axis, name) in [names.0, names.1, names.2].enumerated() where keys[axis] != values[axis] {
            throw FlexAttentionError.mismatchedDimension(
                name: name, expected: keys[axis], actual: values[axis], tensor: "values")
        }
        guard keys.allSatisfy({ $0 > 0 }), values.allSatisfy({ $0 > 0 }) else {
            throw FlexAttentionError.nonPositiveDimension(tensor: "a KV cache", shape: keys)
        }
    }
}

extension KVCacheIndex {
    /// Calls `body` for each run of new tokens that lands in consecutive storage rows, in sequence order: the
    /// sequence, the new tokens' indices `0..<count`, and the storage's outer index and rows (see
    /// ``location(sequence:position:)``). `self` is the grown index; `previous` the lengths before.
    func forEachRun(
        from previous: [Int], count: Int,
        _ body: (_ sequence: Int, _ tokens: Range<Int>, _ outer: Int, _ rows: Range<Int>) throws -> Void
    ) rethrows {
        let run = pageTable?.pageSize ?? max(capacity, 1)
        for (b, start) in previous.enumerated() {
            var t = 0
            while t < count {
                let position = start + t
                let n = min(count - t, run - position % run)
                let (outer, row) = location(sequence: b, position: position)
                try body(b, t..<t + n, outer, row..<row + n)
                t += n
            }
        }
    }
}
