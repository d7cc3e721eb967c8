import CFlexAttention
@testable import FlexAttention
import Testing

@Suite("C interface: decode")
struct BridgeDecodeTests {
    static let (batch, queryHeads, kvHeads, dim, capacity, queryLength) = (2, 4, 2, 16, 40, 2)
    static let lengths = [11, 25]

    /// Logical keys or values `[B, Hkv, capacity, D]`: random up to each sequence's length plus the appended
    /// tokens, zero past it (the caches hold NaN there, which the reference must not read).
    static func logical(_ rng: inout SplitMix64) -> [Float] {
        var values = randomValues(batch * kvHeads * capacity * dim, rng: &rng)
        for b in 0..<batch {
            for h in 0..<kvHeads {
                for j in lengths[b] + queryLength..<capacity {
                    for c in 0..<dim { values[((b * kvHeads + h) * capacity + j) * dim + c] = 0 }
                }
            }
        }
        return values
    }

    /// The appended tokens `[B, Hkv, Sq, D]` of logical keys or values.
    static func appended(_ logical: [Float]) -> [Float] {
        var tokens: [Float] = []
        for b in 0..<batch {
            for h in 0..<kvHeads {
                for t in 0..<queryLength {
                    let row = ((b * kvHeads + h) * capacity + lengths[b] + t) * dim
                    tokens += logical[row..<row + dim]
                }
            }
        }
        return tokens
    }

    /// The Float64 reference of a causal step whose queries are the appended tokens.
    static func reference(query: [Float], keys: [Float], values: [Float]) -> [Double] {
        var reference = ReferenceAttention(
            shape: (batch, queryHeads, kvHeads, queryLength, capacity, dim, dim), q: query.map(Double.init),
            k: keys.map(Double.init), v: values.map(Double.init), scale: 1 / Double(dim).squareRoot())
        reference.keep = { b, _, i, j in j <= lengths[b] + i }
        return reference.forward().o
    }

    /// Runs `fa_decode` with the step's new tokens, returning its status and O (nil when it failed).
    static func decode(
        query: HostTensor, keys: HostTensor, values: HostTensor, lengths: HostTensor, pageTable: HostTensor?,
        newKeys: HostTensor, newValues: HostTensor
    ) throws -> (fa_status, [Float]?) {
        var desc = fa_decode_desc()
        desc.causal = 1
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let status = query.with { q in keys.with { k in values.with { v in lengths.with { l in
            newKeys.with { nk in newValues.with { nv in
                let call = { (table: UnsafePointer<DLTensor>?) in
                    fa_decode(&desc, q, k, v, l, table, nk, nv, nil, 0, &output, &logSumExp)
                }
                return pageTable.map { $0.with { call($0) } } ?? call(nil)
            } }
        } } } }
        guard status == FA_OK else {
            #expect(output == nil && logSumExp == nil)
            return (status, nil)
        }
        let lse = try ReturnedTensor(logSumExp, kind: FA_DLPACK_VERSIONED)
        #expect(lse.shape == [batch, queryHeads, queryLength])
        lse.release()
        return (status, try ReturnedTensor(output, kind: FA_DLPACK_VERSIONED).consume())
    }

    @Test("decode against a contiguous BSHD cache appends the new tokens in place and matches the reference")
    func contiguous() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let (keys, values) = (Self.logical(&rng), Self.logical(&rng))
        let query = randomValues(Self.batch * Self.queryHeads * Self.queryLength * Self.dim, rng: &rng)
        // The caches hold each sequence's tokens below its length, NaN from there on.
        let cacheShape = [Self.batch, Self.kvHeads, Self.capacity, Self.dim]
        func cache(_ logical: [Float]) throws -> HostTensor {
            var held = logical
            for b in 0..<Self.batch {
                for h in 0..<Self.kvHeads {
                    let start = ((b * Self.kvHeads + h) * Self.capacity + Self.lengths[b]) * Self.dim
                    let end = (b * Self.kvHeads + h + 1) * Self.capacity * Self.dim
                    for index in start..<end { held[index] = .nan }
                }
            }
            return try HostTensor.bshd(held, shape: cacheShape)
        }
        let (keyCache, valueCache) = (try cache(keys), try cache(values))
        let lengths = HostTensor.integers(Self.lengths.map(Int64.init), shape: [Self.batch], bits: 32)
        let tokenShape = [Self.batch, Self.kvHeads, Self.queryLength, Self.dim]
        let (status, output) = try Self.decode(
            query: HostTensor(query, shape: [Self.batch, Self.queryHeads, Self.queryLength, Self.dim]), keys: keyCache,
            values: valueCache, lengths: lengths, pageTable: nil,
            newKeys: HostTensor(Self.appended(keys), shape: tokenShape),
            newValues: HostTensor(Self.appended(values), shape: tokenShape))
        #expect(status == FA_OK, "\(lastErrorMessage())")
        #expect(relativeError(try #require(output), Self.reference(query: query, keys: keys, values: values)) < 2e-5,
                "seed \(seed)")
        // The new tokens are in the caller's cache; the lengths tensor is the caller's, unchanged.
        let held = try keyCache.floats()
        for b in 0..<Self.batch {
            let row = (b * Self.kvHeads * Self.capacity + Self.lengths[b] + 1) * Self.dim
            #expect(Array(held[row..<row + Self.dim]) == Array(keys[row..<row + Self.dim]))
        }
        #expect(lengths.memory.load(fromByteOffset: 4, as: Int32.self) == Int32(Self.lengths[1]))
    }

    /// A paged cache of `logical`'s tokens below each length: pages of 4 tokens in shuffled order, NaN elsewhere.
    static func pages(_ logical: [Float], table: [Int64], pageCount: Int) throws -> HostTensor {
        let (pageSize, pagesPerSequence) = (4, capacity / 4)
        var pool = [Float](repeating: .nan, count: pageCount * pageSize * kvHeads * dim)
        for b in 0..<batch {
            for j in 0..<lengths[b] {
                let page = Int(table[b * pagesPerSequence + j / pageSize])
                for h in 0..<kvHeads {
                    let from = ((b * kvHeads + h) * capacity + j) * dim
                    let to = ((page * pageSize + j % pageSize) * kvHeads + h) * dim
                    pool.replaceSubrange(to..<to + dim, with: logical[from..<from + dim])
                }
            }
        }
        return try HostTensor(pool, shape: [pageCount, pageSize, kvHeads, dim])
    }

    @Test("decode against a paged cache with an int64 page table appends in place and matches the reference; a missing page is refused with the cache untouched")
    func paged() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let (keys, values) = (Self.logical(&rng), Self.logical(&rng))
        let query = randomValues(Self.batch * Self.queryHeads * Self.queryLength * Self.dim, rng: &rng)
        let (pagesPerSequence, pageCount) = (Self.capacity / 4, 24)
        var order = Array(0..<pageCount)
        order.shuffle(using: &rng)
        // Pages assigned to every position a sequence holds after the append, −1 beyond.
        var entries = [Int64](repeating: -1, count: Self.batch * pagesPerSequence)
        var next = 0
        for b in 0..<Self.batch {
            for page in 0..<(Self.lengths[b] + Self.queryLength + 3) / 4 {
                entries[b * pagesPerSequence + page] = Int64(order[next])
                next += 1
            }
        }
        let tokenShape = [Self.batch, Self.kvHeads, Self.queryLength, Self.dim]
        let (newKeys, newValues) = (try HostTensor(Self.appended(keys), shape: tokenShape),
                                    try HostTensor(Self.appended(values), shape: tokenShape))
        let queryTensor = try HostTensor(query, shape: [Self.batch, Self.queryHeads, Self.queryLength, Self.dim])
        let lengths = HostTensor.integers(Self.lengths.map(Int64.init), shape: [Self.batch], bits: 64)

        // Sequence 0's page for its second appended token (position 12, page entry 3) withdrawn: refused.
        var missing = entries
        missing[3] = -1
        let keyPool = try Self.pages(keys, table: entries, pageCount: pageCount)
        let valuePool = try Self.pages(values, table: entries, pageCount: pageCount)
        let before = Array(UnsafeRawBufferPointer(start: keyPool.memory, count: keyPool.byteCount))
        let refused = try Self.decode(
            query: queryTensor, keys: keyPool, values: valuePool, lengths: lengths,
            pageTable: HostTensor.integers(missing, shape: [Self.batch, pagesPerSequence], bits: 64), newKeys: newKeys,
            newValues: newValues)
        #expect(refused.0 == FA_ERROR_INVALID_ARGUMENT)
        #expect(lastErrorMessage().contains("page_table entry 3"), "\(lastErrorMessage())")
        #expect(Array(UnsafeRawBufferPointer(start: keyPool.memory, count: keyPool.byteCount)).elementsEqual(before) {
            $0 == $1
        })

        let (status, output) = try Self.decode(
            query: queryTensor, keys: keyPool, values: valuePool, lengths: lengths,
            pageTable: HostTensor.integers(entries, shape: [Self.batch, pagesPerSequence], bits: 64), newKeys: newKeys,
            newValues: newValues)
        #expect(status == FA_OK, "\(lastErrorMessage())")
        #expect(relativeError(try #require(output), Self.reference(query: query, keys: keys, values: values)) < 2e-5,
                "seed \(seed)")
    }
}
