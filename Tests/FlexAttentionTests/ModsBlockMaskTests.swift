import Testing
@testable import FlexAttention

@Suite struct ModsBlockMaskTests {
    /// Block kinds by brute force: 0 empty, 1 partial, 2 full, indexed `[queryBlock][keyBlock]`.
    static func bruteForce(_ kept: [Bool], queries: Int, keys: Int, queryBlock: Int, keyBlock: Int) -> [[Int]] {
        let (rows, columns) = ((queries + queryBlock - 1) / queryBlock, (keys + keyBlock - 1) / keyBlock)
        return (0..<rows).map { row in
            (0..<columns).map { column in
                var (some, all) = (false, true)
                for q in row * queryBlock..<min((row + 1) * queryBlock, queries) {
                    for kv in column * keyBlock..<min((column + 1) * keyBlock, keys) {
                        some = some || kept[kv * queries + q]
                        all = all && kept[kv * queries + q]
                    }
                }
                return all ? 2 : some ? 1 : 0
            }
        }
    }

    /// Checks every accessor of `blockMask` for (b, h) against brute force, and the TileMasking answers.
    static func check(_ blockMask: BlockMask, b: Int, h: Int) throws {
        let (queries, keys) = (blockMask.queryLength, blockMask.keyLength)
        let kept = try TileGrid(batch: b, head: h, queries: queries, keys: keys).kept(blockMask.mask)
        let kinds = bruteForce(kept, queries: queries, keys: keys, queryBlock: blockMask.queryBlockSize, keyBlock: blockMask.keyBlockSize)
        for (row, line) in kinds.enumerated() {
            #expect(blockMask.fullKeyBlocks(batch: b, head: h, queryBlock: row) == line.indices.filter { line[$0] == 2 }, "\(blockMask.mask) row \(row)")
            #expect(blockMask.partialKeyBlocks(batch: b, head: h, queryBlock: row) == line.indices.filter { line[$0] == 1 }, "\(blockMask.mask) row \(row)")
        }
        for column in 0..<blockMask.keyBlockCount {
            #expect(blockMask.fullQueryBlocks(batch: b, head: h, keyBlock: column) == kinds.indices.filter { kinds[$0][column] == 2 })
            #expect(blockMask.partialQueryBlocks(batch: b, head: h, keyBlock: column) == kinds.indices.filter { kinds[$0][column] == 1 })
        }
        // The CPU loops ask in tiles of 64, forward by query tile and backward by key tile.
        checkVisited(major: queries, minor: keys, kept: { q, kv in kept[kv * queries + q] }) {
            blockMask.keyBlocks(batch: b, head: h, queries: $0, keyCount: keys, blockSize: 64)
        }
        checkVisited(major: keys, minor: queries, kept: { kv, q in kept[kv * queries + q] }) {
            blockMask.queryBlocks(batch: b, head: h, keys: $0, queryCount: queries, blockSize: 64)
        }
    }

    /// Every element of a skipped block is masked out and every element of a block visited without the mask is kept.
    static func checkVisited(
        major: Int, minor: Int, kept: (Int, Int) -> Bool, visit: (Range<Int>) -> [VisitedBlock]
    ) {
        for start in stride(from: 0, to: major, by: 64) {
            let tile = start..<min(start + 64, major)
            let visited = visit(tile)
            for j in 0..<minor {
                let block = visited.first { $0.range.contains(j) }
                for i in tile {
                    if block == nil { #expect(!kept(i, j), "skipped a kept element at \(i), \(j)") }
                    if block?.needsMask == false { #expect(kept(i, j), "left a removed element unmasked at \(i), \(j)") }
                }
            }
        }
    }

    static let ids = (0..<203).map { ($0 * $0) / 2000 }

    static let masks: [MaskMod] = [
        .causal, .causalBottomRight, .slidingWindow(50), .symmetricWindow(radius: 17), .chunked(40), .prefixLM(length: 70),
        try! .prefixLM(lengths: [5, 130]), try! .document(ids: ids), try! .documentCausal(ids: ids),
        .dilatedWindow(size: 6, dilation: 7), !MaskMod.causal || .chunked(64),
        MaskMod { _, h, q, kv in (q + h * 30) % 90 < 45 && float(kv) * 0.75 <= float(q) },
    ]

    @Test("classification matches brute force on odd shapes", arguments: 0..<masks.count)
    func classification(_ index: Int) throws {
        let mask = Self.masks[index]
        for (queries, keys, queryBlock, keyBlock) in [(203, 203, 64, 64), (150, 203, 48, 32), (203, 140, 128, 128)] {
            let blockMask = try BlockMask(
                mask, batch: 2, heads: 2, queryLength: queries, keyLength: keys, queryBlockSize: queryBlock, keyBlockSize: keyBlock)
            for b in 0..<2 { for h in 0..<2 { try Self.check(blockMask, b: b, h: h) } }
        }
    }

    @Test("random masks classify like brute force", arguments: 0..<12)
    func randomClassification(_ seed: Int) throws {
        var random = try RandomExpressions(seed: UInt64(seed) + 3000, length: 70, heads: 2)
        let mask = try MaskMod(ModExpression(random.bool(depth: 3)))
        let blockMask = try BlockMask(mask, batch: 2, heads: 2, queryLength: 70, keyLength: 67, queryBlockSize: 16, keyBlockSize: 8)
        try Self.check(blockMask, b: 1, h: 1)
    }

    @Test func broadcastAndPicture() throws {
        let causal = try BlockMask(.causal, batch: 4, heads: 8, queryLength: 256, keyLength: 256, queryBlockSize: 64, keyBlockSize: 64)
        #expect(!causal.dependsOnBatch && !causal.dependsOnHead)
        #expect(causal.keptBlockCounts == (full: 6, partial: 4))
        #expect(causal.picture() == "░···\n█░··\n██░·\n███░\nsparsity 37.5%\n")
        #expect(causal.description == "BlockMask 256×256 in 64×64 blocks (shared by all batches and heads): 6 full, 4 partial, sparsity 37.5%")
        let perBatch = try BlockMask(try .prefixLM(lengths: [1, 2]), batch: 2, heads: 3, queryLength: 256, keyLength: 256, queryBlockSize: 64, keyBlockSize: 64)
        #expect(perBatch.dependsOnBatch && !perBatch.dependsOnHead)
        let large = try BlockMask(.slidingWindow(1000), queryLength: 65536, keyLength: 65536, queryBlockSize: 128, keyBlockSize: 128)
        #expect(large.picture(maxSize: 8).hasPrefix("░·······\n░░······\n"))
    }

    @Test func domainErrors() throws {
        let short = try IntTable(name: "doc", values: [0, 0, 1], shape: [3])
        let outside = MaskMod { _, _, q, kv in short[q] == short[kv] }
        #expect(throws: ModError.tableIndexOutOfRange(table: "doc", axis: 0, index: 3, extent: 3, at: [0, 0, 3, 0])) {
            try BlockMask(outside, queryLength: 5, keyLength: 3, queryBlockSize: 2, keyBlockSize: 2)
        }
        // Every operand counts, even one `where` does not pick.
        let unpicked = MaskMod { _, _, q, kv in select(q < 3, short[q], 0) == 0 }
        #expect(throws: ModError.self) { try BlockMask(unpicked, queryLength: 4, keyLength: 1) }
        #expect(throws: ModError.divisionByZero(at: [0, 0, 0, 2])) {
            try BlockMask(MaskMod { _, _, q, kv in q / (kv - 2) == 0 }, queryLength: 4, keyLength: 4)
        }
        #expect(throws: FlexAttentionError.self) { try BlockMask(.causal, queryLength: 0, keyLength: 4) }
        let bias = try FloatTable(name: "bias", values: [1, 2, 3], shape: [3])
        let score = ScoreMod { s, _, _, q, kv in s + bias[q - kv + 1] }
        try score.checkIndices(batch: 1, heads: 1, queryLength: 2, keyLength: 2)
        #expect(throws: ModError.tableIndexOutOfRange(table: "bias", axis: 0, index: 3, extent: 3, at: [0, 0, 2, 0])) {
            try score.checkIndices(batch: 1, heads: 1, queryLength: 3, keyLength: 3)
        }
        #expect(try BlockMask(MaskMod { _, _, q, _ in short[min(q, 2)] == 0 }, queryLength: 300, keyLength: 300,
                              queryBlockSize: 128, keyBlockSize: 128).keptBlockCounts == (full: 0, partial: 3))
    }
}
