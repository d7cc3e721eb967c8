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

/// Reads `count` (at most 16) floats; lanes past `count` are 0.
func loadLanes(_ pointer: UnsafePointer<Float>, count: Int) -> SIMD16<Float> {
    if count == 16 { return UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Float>.self) }
    var lanes = SIMD16<Float>.zero
    for lane in 0..<count { lanes[lane] = pointer[lane] }
    return lanes
}

/// Writes the first `count` (at most 16) lanes.
func storeLanes(_ lanes: SIMD16<Float>, to pointer: UnsafeMutablePointer<Float>, count: Int) {
    if count == 16 {
        UnsafeMutableRawPointer(pointer).storeBytes(of: lanes, as: SIMD16<Float>.self)
    } else {
        for lane in 0..<count { pointer[lane] = lanes[lane] }
    }
}
