@testable import FlexAttention
import Testing

/// Host KV caches: appending in place, page assignment, and the errors that leave a cache untouched.
@Suite("KV caches")
struct KVCacheTests {
    @Test("appending to contiguous and paged caches places every token where decoding reads it",
          arguments: [nil, 1, 3, 16] as [Int?])
    func appendPlacesTokens(pageSize: Int?) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (batch, heads, dim) = (2, 3, 8)
        var cache = try pageSize.map {
            try KVCache(batch: batch, kvHeads: heads, headDim: dim, valueDim: 5, pageCount: 40, pageSize: $0,
                        maxPagesPerSequence: 20 / $0 + 1)
        } ?? KVCache(batch: batch, kvHeads: heads, capacity: 20, headDim: dim, valueDim: 5, layout: .bshd)
        var keys: [Tensor] = [], values: [Tensor] = []
        for count in [5, 1, 7] {
            keys.append(try randomTensor([batch, heads, count, dim], rng: &rng))
            values.append(try randomTensor([batch, heads, count, 5], rng: &rng))
            try cache.append(keys: keys.last!, values: values.last!)
        }
        #expect(cache.lengths == [13, 13])
        let rows = CacheRows(cache.keys, pageTable: cache.pageTable)
        let valueRows = CacheRows(cache.values, pageTable: cache.pageTable)
        var read = [Float](repeating: 0, count: dim)
        var position = 0
        for (k, v) in zip(keys, values) {
            let (kf, vf) = (k.floats(), v.floats())
            let count = k.shape[2]
            for b in 0..<batch {
                for h in 0..<heads {
                    for t in 0..<count {
                        rows.rows.read(atOffset: rows.offset(sequence: b, head: h, position: position + t), into: &read)
                        let start = ((b * heads + h) * count + t) * dim
                        #expect(Array(read) == Array(kf[start..<start + dim]), "key \(b) \(h) \(position + t), seed \(seed)")
                        valueRows.rows.read(atOffset: valueRows.offset(sequence: b, head: h, position: position + t), into: &read)
                        let vStart = ((b * heads + h) * count + t) * 5
                        #expect(Array(read[0..<5]) == Array(vf[vStart..<vStart + 5]))
                    }
                }
            }
            position += count
        }
        if let table = cache.pageTable {
            let used = Set(table.entries.filter { $0 >= 0 })
            #expect(used.count == 2 * ((13 + table.pageSize - 1) / table.pageSize), "each sequence got its own pages")
        }
    }

    @Test("running out of pages, outgrowing the table and pages outside the pool are errors that write nothing")
    func errorsWriteNothing() throws {
        var cache = try KVCache(batch: 2, kvHeads: 1, headDim: 4, pageCount: 3, pageSize: 4, maxPagesPerSequence: 3)
        let four = try Tensor([Float](repeating: 1, count: 2 * 4 * 4), shape: [2, 1, 4, 4])
        try cache.append(keys: four, values: four)  // 2 pages used
        let before = (cache.keys.floats(), cache.lengths, cache.pageTable)
        let two = try Tensor([Float](repeating: 7, count: 2 * 2 * 4), shape: [2, 1, 2, 4])
        #expect(throws: FlexAttentionError.outOfPages(needed: 2, free: 1)) { try cache.append(keys: two, values: two) }
        #expect(cache.keys.floats() == before.0 && cache.lengths == before.1 && cache.pageTable == before.2)
        let nine = try Tensor([Float](repeating: 7, count: 2 * 9 * 4), shape: [2, 1, 9, 4])
        #expect(throws: FlexAttentionError.cacheFull(sequence: 0, length: 13, capacity: 12)) {
            try cache.append(keys: nine, values: nine)
        }
        #expect(cache.keys.floats() == before.0 && cache.lengths == before.1)
        try cache.release(sequence: 1)
        #expect(cache.lengths == [4, 0] && cache.pageTable?.freePages.count == 2)
        #expect(throws: FlexAttentionError.pageOutOfRange(sequence: 1, entry: 0, page: 3, pageCount: 3)) {
            try PageTable(entries: [0, -1, 3, -1], batch: 2, maxPagesPerSequence: 2, pageCount: 3, pageSize: 4)
        }
        let table = try PageTable(entries: [0, -1, 1, 2], batch: 2, maxPagesPerSequence: 2, pageCount: 3, pageSize: 4)
        let pool = try Tensor(zeros: [3, 4, 1, 4])
        #expect(throws: FlexAttentionError.unassignedPage(sequence: 0, entry: 1)) {
            try KVCache(keyPages: pool, valuePages: pool, pageTable: table, lengths: [5, 8])
        }
        #expect(throws: FlexAttentionError.self) {
            try PageTable(batch: 1, maxPagesPerSequence: 1, pageCount: 1, pageSize: 257)
        }
    }
}
