/// The inputs of one ``ModTileMachine`` run: a rectangle of one (batch, head)'s score matrix, cut into chunks of
/// 16 lanes. Chunks go key row by key row; each row is cut into runs of up to 16 queries from
/// `queries.lowerBound`, lane `i` of a run being query `firstQuery + i`.
struct ModChunks {
    var batch: Int
    var head: Int
    var queries: Range<Int>
    var keys: Range<Int>
    var queryLength: Int
    var keyLength: Int

    var chunksPerRow: Int { (queries.count + 15) / 16 }
    var count: Int { chunksPerRow * keys.count }

    /// The key, first query and number of queries (at most 16) of chunk `index`.
    func chunk(_ index: Int) -> (key: Int, firstQuery: Int, lanes: Int) {
        let (row, column) = index.quotientAndRemainder(dividingBy: chunksPerRow)
        let firstQuery = queries.lowerBound + 16 * column
        return (keys.lowerBound + row, firstQuery, min(16, queries.upperBound - firstQuery))
    }

    /// Calls `body` for every chunk in order, with its index, key, first query and number of queries.
    @inline(__always)
    func forEachChunk(_ body: (_ index: Int, _ key: Int, _ firstQuery: Int, _ lanes: Int) throws -> Void) rethrows {
        var index = 0
        for key in keys {
            for firstQuery in stride(from: queries.lowerBound, to: queries.upperBound, by: 16) {
                try body(index, key, firstQuery, min(16, queries.upperBound - firstQuery))
                index += 1
            }
        }
    }

    /// Calls `body` for consecutive pieces of at most `capacity` chunks that together make these chunks, in
    /// order: groups of whole key rows, or parts of one row when a row alone is longer.
    func forEachPiece(capacity: Int, _ body: (ModChunks) throws -> Void) rethrows {
        guard count > 0 else { return }
        var piece = self
        if chunksPerRow <= capacity {
            let rows = capacity / chunksPerRow
            for first in stride(from: keys.lowerBound, to: keys.upperBound, by: rows) {
                piece.keys = first..<min(first + rows, keys.upperBound)
                try body(piece)
            }
        } else {
            for key in keys {
                for first in stride(from: queries.lowerBound, to: queries.upperBound, by: 16 * capacity) {
                    piece.keys = key..<key + 1
                    piece.queries = first..<min(first + 16 * capacity, queries.upperBound)
                    try body(piece)
                }
            }
        }
    }
}
