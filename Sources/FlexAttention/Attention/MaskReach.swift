/// Which query rows keep which keys, for a few flagged rows at a time: the CPU loops' block lists and tile masking
/// answer it, so it agrees with the mask the attention applies, on every device.
///
/// Each direction visits, per head, only the CPU tiles that hold a flagged row and that the mask does not remove
/// whole, and evaluates the mask only in tiles it removes in part: at most one mask evaluation per score, never a
/// product with the head dim.
struct MaskReach {
    let shape: AttentionShape
    let masking: any TileMasking

    /// - Throws: ``ModError`` when the problem's mask is malformed (as attention itself would).
    init(_ problem: AttentionProblem) throws {
        shape = problem.shape
        masking = try CPUMods.masking(problem)
    }

    /// The query rows `[B, Hq, Sq]` that keep at least one of the flagged key rows `keys` (`[B, Hkv, Skv]`).
    func queries(keepingAnyOf keys: RowFlags) -> RowFlags {
        var result = RowFlags(batch: shape.batch, heads: shape.queryHeads, length: shape.queryLength)
        let tile = Scratch(CPUTile.keys * CPUTile.queries)
        forEachFlaggedTile(of: keys, tileSize: CPUTile.keys) { b, kvHead, block, flagged in
            for h in kvHead * shape.groupSize..<(kvHead + 1) * shape.groupSize {
                let visited = masking.queryBlocks(
                    batch: b, head: h, keys: block, queryCount: shape.queryLength, blockSize: CPUTile.queries)
                for queryBlock in visited {
                    let kept = keptPairs(tile.pointer, batch: b, head: h, queries: queryBlock.range, keys: block,
                                         needsMask: queryBlock.needsMask)
                    for q in queryBlock.range where flagged.contains(where: { kept(q, $0) }) { result[b, h, q] = true }
                }
            }
        }
        return result
    }

    /// The key rows `[B, Hkv, Skv]` that at least one of the flagged query rows `queries` (`[B, Hq, Sq]`) keeps.
    func keys(keptByAnyOf queries: RowFlags) -> RowFlags {
        var result = RowFlags(batch: shape.batch, heads: shape.keyValueHeads, length: shape.keyLength)
        let tile = Scratch(CPUTile.keys * CPUTile.queries)
        forEachFlaggedTile(of: queries, tileSize: CPUTile.queries) { b, h, block, flagged in
            let visited = masking.keyBlocks(
                batch: b, head: h, queries: block, keyCount: shape.keyLength, blockSize: CPUTile.keys)
            for keyBlock in visited {
                let kept = keptPairs(tile.pointer, batch: b, head: h, queries: block, keys: keyBlock.range,
                                     needsMask: keyBlock.needsMask)
                for k in keyBlock.range where flagged.contains(where: { kept($0, k) }) {
                    result[b, h / shape.groupSize, k] = true
                }
            }
        }
        return result
    }

    /// Calls `body(b, h, tile, flagged rows of the tile)` for every tile of `tileSize` rows of each (batch, head)
    /// of `flags` that holds a flagged row.
    private func forEachFlaggedTile(
        of flags: RowFlags, tileSize: Int, _ body: (Int, Int, Range<Int>, [Int]) -> Void
    ) {
        for b in 0..<shape.batch {
            for h in 0..<flags.heads {
                for start in stride(from: 0, to: flags.length, by: tileSize) {
                    let tile = start..<min(start + tileSize, flags.length)
                    let flagged = tile.filter { flags[b, h, $0] }
                    if !flagged.isEmpty { body(b, h, tile, flagged) }
                }
            }
        }
    }

    /// Whether query `q` keeps key `k` inside a visited block, masking the block in `scratch` (room for a CPU tile)
    /// when the mask removes part of it.
    private func keptPairs(
        _ scratch: UnsafeMutablePointer<Float>, batch: Int, head: Int, queries: Range<Int>, keys: Range<Int>,
        needsMask: Bool
    ) -> (Int, Int) -> Bool {
        guard needsMask else { return { _, _ in true } }
        scratch.update(repeating: 0, count: CPUTile.keys * CPUTile.queries)
        masking.mask(ScoreTile(
            values: scratch, stride: CPUTile.queries, batch: batch, head: head, queries: queries, keys: keys))
        return { q, k in
            scratch[(k - keys.lowerBound) * CPUTile.queries + q - queries.lowerBound] != -.infinity
        }
    }
}
