/// Walking a score tile in the chunks of ``ModTileMachine``.
extension ScoreTile {
    /// The whole tile as chunks of a mod's inputs; `q_len` and `kv_len` are the tile's ``sequenceLengths`` when
    /// it has them, else the given problem lengths.
    func chunks(queryLength: Int, keyLength: Int) -> ModChunks {
        ModChunks(
            batch: batch, head: head, queries: queries, keys: keys,
            queryLength: sequenceLengths?.query ?? queryLength, keyLength: sequenceLengths?.key ?? keyLength)
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
