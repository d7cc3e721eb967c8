/// Walking a score tile in the chunks of ``ModTileMachine``.
extension ScoreTile {
    /// The whole tile as chunks of a mod's inputs.
    func chunks(queryLength: Int, keyLength: Int) -> ModChunks {
        ModChunks(
            batch: batch, head: head, queries: queries, keys: keys, queryLength: queryLength, keyLength: keyLength)
    }

    /// Calls `body` for each chunk of `piece` (a part of this tile), in order, with its index in the piece, its
    /// number of queries and the offset of its first score from ``values``.
    @inline(__always)
    func forEachLaneRun(of piece: ModChunks, _ body: (_ chunk: Int, _ count: Int, _ offset: Int) -> Void) {
        piece.forEachChunk { chunk, key, firstQuery, lanes in
            body(chunk, lanes, (key - keys.lowerBound) * stride + firstQuery - queries.lowerBound)
        }
    }
}
