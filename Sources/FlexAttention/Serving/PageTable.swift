/// Which pages of a page pool hold each sequence's tokens (vLLM's and FlashAttention's block table).
///
/// Entry `[b, p]` is the pool page that holds tokens `p·pageSize ..< (p+1)·pageSize` of sequence `b`, or −1 while
/// no page is assigned. A ``KVCache`` assigns free pages as its sequences grow (the lowest free index first, so the
/// same appends give the same table) and takes them back when a sequence is released. A page may appear in several
/// sequences' rows (a shared prompt prefix): reading it is fine, and appending into it writes what every sharer
/// reads, so give a sequence its own page before it appends past a shared one.
public struct PageTable: Sendable, Equatable {
    /// Tokens per page, 1 to 256.
    public let pageSize: Int
    /// Pages in the pool the entries index.
    public let pageCount: Int
    /// Sequences (rows).
    public let batch: Int
    /// Entries per sequence (columns).
    public let maxPagesPerSequence: Int
    /// `[batch, maxPagesPerSequence]` row-major page indices, −1 where unassigned.
    public private(set) var entries: [Int32]

    /// The largest page size the kernels take.
    public static let maximumPageSize = 256

    /// An empty table: every entry unassigned.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a page size outside 1...256 or a non-positive count.
    public init(batch: Int, maxPagesPerSequence: Int, pageCount: Int, pageSize: Int) throws {
        try self.init(
            entries: [Int32](repeating: -1, count: max(0, batch) * max(0, maxPagesPerSequence)), batch: batch,
            maxPagesPerSequence: maxPagesPerSequence, pageCount: pageCount, pageSize: pageSize)
    }

    /// A table with the given entries.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a page size outside 1...256, counts that are not
    ///   positive or do not match `entries`, and ``FlexAttentionError/pageOutOfRange(sequence:entry:page:pageCount:)``
    ///   for an entry that is neither −1 nor a page of the pool.
    public init(entries: [Int32], batch: Int, maxPagesPerSequence: Int, pageCount: Int, pageSize: Int) throws {
        guard (1...Self.maximumPageSize).contains(pageSize) else {
            throw FlexAttentionError.invalidArgument("page size \(pageSize) is outside 1...\(Self.maximumPageSize)")
        }
        guard batch > 0, maxPagesPerSequence > 0, pageCount > 0 else {
            throw FlexAttentionError.invalidArgument(
                "a page table needs positive batch (\(batch)), pages per sequence (\(maxPagesPerSequence)) and pool"
                    + " size (\(pageCount))")
        }
        guard maxPagesPerSequence <= Int(Int32.max) / pageSize, pageCount <= Int(Int32.max) else {
            throw FlexAttentionError.invalidArgument("a page table of \(maxPagesPerSequence) × \(pageSize) tokens is too large")
        }
        guard entries.count == batch * maxPagesPerSequence else {
            throw FlexAttentionError.elementCountMismatch(expected: batch * maxPagesPerSequence, actual: entries.count)
        }
        if let bad = entries.indices.first(where: { entries[$0] < -1 || Int(entries[$0]) >= pageCount }) {
            throw FlexAttentionError.pageOutOfRange(
                sequence: bad / maxPagesPerSequence, entry: bad % maxPagesPerSequence, page: Int(entries[bad]),
                pageCount: pageCount)
        }
        self.entries = entries
        self.batch = batch
        self.maxPagesPerSequence = maxPagesPerSequence
        self.pageCount = pageCount
        self.pageSize = pageSize
    }

    /// Tokens one sequence can hold.
    public var capacity: Int { maxPagesPerSequence * pageSize }

    /// The pool page holding token `position` of `sequence`, −1 when none is assigned.
    public func page(sequence: Int, position: Int) -> Int32 {
        entries[sequence * maxPagesPerSequence + position / pageSize]
    }

    /// Pages no entry refers to, in increasing order.
    public var freePages: [Int] {
        var used = [Bool](repeating: false, count: pageCount)
        for entry in entries where entry >= 0 { used[Int(entry)] = true }
        return used.indices.filter { !used[$0] }
    }

    /// The table with pages assigned so that sequence `b` can hold `lengths[b]` tokens.
    /// - Throws: ``FlexAttentionError/cacheFull(sequence:length:capacity:)`` for a length past the table and
    ///   ``FlexAttentionError/outOfPages(needed:free:)`` when the pool has too few free pages.
    func assigning(lengths: [Int]) throws -> PageTable {
        var table = self
        var missing: [Int] = []
        for (b, length) in lengths.enumerated() {
            guard length <= capacity else {
                throw FlexAttentionError.cacheFull(sequence: b, length: length, capacity: capacity)
            }
            let row = b * maxPagesPerSequence
            let pages = (length + pageSize - 1) / pageSize
            missing += (row..<row + pages).filter { entries[$0] < 0 }
        }
        guard !missing.isEmpty else { return table }
        let free = freePages
        guard free.count >= missing.count else {
            throw FlexAttentionError.outOfPages(needed: missing.count, free: free.count)
        }
        for (slot, page) in zip(missing, free) { table.entries[slot] = Int32(page) }
        return table
    }

    /// The table with sequence `b`'s entries unassigned.
    func releasing(sequence b: Int) -> PageTable {
        var table = self
        let row = b * maxPagesPerSequence
        table.entries.replaceSubrange(row..<row + maxPagesPerSequence,
                                      with: repeatElement(-1, count: maxPagesPerSequence))
        return table
    }

    /// Checks that every token below `lengths[b]` has a page.
    /// - Throws: ``FlexAttentionError/unassignedPage(sequence:entry:)`` for the first one that has none.
    func checkAssigned(lengths: [Int]) throws {
        for (b, length) in lengths.enumerated() {
            for p in 0..<(length + pageSize - 1) / pageSize where entries[b * maxPagesPerSequence + p] < 0 {
                throw FlexAttentionError.unassignedPage(sequence: b, entry: p)
            }
        }
    }
}
