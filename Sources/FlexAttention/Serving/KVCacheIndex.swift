/// What a KV cache knows apart from its memory: each sequence's length and, when paged, its page table. Host and
/// device caches hold one, so they check, grow and address tokens the same way.
struct KVCacheIndex: Sendable, Equatable {
    /// Tokens each sequence can hold.
    let capacity: Int
    /// Tokens held by each sequence.
    private(set) var lengths: [Int]
    /// Where a paged cache's tokens live; nil for a contiguous cache.
    private(set) var pageTable: PageTable?

    var batch: Int { lengths.count }

    /// - Throws: ``FlexAttentionError`` for lengths outside `0...capacity`, a table of another batch, or a token
    ///   below a length without a page.
    init(capacity: Int, lengths: [Int], pageTable: PageTable?) throws {
        if let pageTable {
            guard pageTable.batch == lengths.count else {
                throw FlexAttentionError.invalidArgument(
                    "\(lengths.count) sequence lengths for a page table of \(pageTable.batch) sequences")
            }
            try pageTable.checkAssigned(lengths: lengths.map { min($0, capacity) })
        }
        guard !lengths.isEmpty else { throw FlexAttentionError.invalidArgument("a KV cache needs at least one sequence") }
        if let b = lengths.indices.first(where: { lengths[$0] < 0 }) {
            throw FlexAttentionError.invalidArgument("sequence \(b) has a negative length, \(lengths[b])")
        }
        if let b = lengths.indices.first(where: { lengths[$0] > capacity }) {
            throw FlexAttentionError.cacheFull(sequence: b, length: lengths[b], capacity: capacity)
        }
        self.capacity = capacity
        self.lengths = lengths
        self.pageTable = pageTable
    }

    /// The index after every sequence grows by `count` tokens, with pages assigned where needed.
    /// - Throws: ``FlexAttentionError/cacheFull(sequence:length:capacity:)`` or
    ///   ``FlexAttentionError/outOfPages(needed:free:)``, leaving this index as it is.
    func appending(_ count: Int) throws -> KVCacheIndex {
        guard count >= 0 else { throw FlexAttentionError.invalidArgument("cannot append \(count) tokens") }
        var grown = self
        grown.lengths = lengths.map { $0 + count }
        if let b = grown.lengths.indices.first(where: { grown.lengths[$0] > capacity }) {
            throw FlexAttentionError.cacheFull(sequence: b, length: grown.lengths[b], capacity: capacity)
        }
        grown.pageTable = try pageTable?.assigning(lengths: grown.lengths)
        return grown
    }

    /// The index with `sequence` emptied and, when paged, its pages returned to the pool.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a sequence outside the batch.
    func releasing(sequence: Int) throws -> KVCacheIndex {
        guard lengths.indices.contains(sequence) else {
            throw FlexAttentionError.invalidArgument("sequence \(sequence) is outside the cache's 0..<\(batch)")
        }
        var emptied = self
        emptied.lengths[sequence] = 0
        emptied.pageTable = pageTable?.releasing(sequence: sequence)
        return emptied
    }

    /// Where token `position` of `sequence` is stored: `(sequence, position)` in a contiguous cache's
    /// `[B, Hkv, Smax, D]`, `(page, slot)` in a paged pool's `[P, pageSize, Hkv, D]`.
    func location(sequence: Int, position: Int) -> (outer: Int, row: Int) {
        guard let pageTable else { return (sequence, position) }
        return (Int(pageTable.page(sequence: sequence, position: position)), position % pageTable.pageSize)
    }
}
