import FlexAttentionSIMD

/// A block of the score matrix that attention must visit: the range of keys (forward) or queries (backward) it
/// covers, and whether the mask must be evaluated inside it. Blocks not listed are empty and never touched.
struct VisitedBlock: Equatable, Sendable {
    var range: Range<Int>
    var needsMask: Bool
}

/// A rectangle of scores held key-major: `values[(key − keys.lowerBound) * stride + (query − queries.lowerBound)]`.
struct ScoreTile {
    var values: UnsafeMutablePointer<Float>
    var stride: Int
    var batch: Int
    var head: Int
    var queries: Range<Int>
    var keys: Range<Int>
    /// The `q_len` and `kv_len` mods see here when they differ from the problem's (a decoded or packed sequence's
    /// own lengths); nil for the problem's.
    var sequenceLengths: SequenceLengths? = nil
}

/// The query and key counts of one sequence, as mods see them (`q_len`, `kv_len`).
struct SequenceLengths: Equatable, Sendable {
    var query: Int
    var key: Int
}

/// Which parts of the score matrix survive the mask, asked a block at a time. The CPU loops visit only the
/// blocks it lists and call ``mask(_:)`` only on those marked `needsMask`.
protocol TileMasking: Sendable {
    /// The key blocks of width at most `blockSize` that queries `queries` of (batch, head) attend to, in order.
    func keyBlocks(batch: Int, head: Int, queries: Range<Int>, keyCount: Int, blockSize: Int) -> [VisitedBlock]
    /// The query blocks of height at most `blockSize` that attend to keys `keys` of (batch, head), in order.
    func queryBlocks(batch: Int, head: Int, keys: Range<Int>, queryCount: Int, blockSize: Int) -> [VisitedBlock]
    /// Sets every masked-out score of `tile` to −∞.
    func mask(_ tile: ScoreTile)
}

/// Everything is kept.
struct NoMasking: TileMasking {
    func keyBlocks(batch: Int, head: Int, queries: Range<Int>, keyCount: Int, blockSize: Int) -> [VisitedBlock] {
        stride(from: 0, to: keyCount, by: blockSize).map {
            VisitedBlock(range: $0..<min($0 + blockSize, keyCount), needsMask: false)
        }
    }

    func queryBlocks(batch: Int, head: Int, keys: Range<Int>, queryCount: Int, blockSize: Int) -> [VisitedBlock] {
        keyBlocks(batch: batch, head: head, queries: keys, keyCount: queryCount, blockSize: blockSize)
    }

    func mask(_ tile: ScoreTile) {}
}

/// `q >= kv`: blocks wholly above the diagonal are skipped, blocks wholly below it need no mask.
struct CausalMasking: TileMasking {
    func keyBlocks(batch: Int, head: Int, queries: Range<Int>, keyCount: Int, blockSize: Int) -> [VisitedBlock] {
        let end = min(keyCount, queries.upperBound)
        return stride(from: 0, to: end, by: blockSize).map { start in
            let range = start..<min(start + blockSize, end)
            return VisitedBlock(range: range, needsMask: range.upperBound - 1 > queries.lowerBound)
        }
    }

    func queryBlocks(batch: Int, head: Int, keys: Range<Int>, queryCount: Int, blockSize: Int) -> [VisitedBlock] {
        guard keys.lowerBound < queryCount else { return [] }
        let first = keys.lowerBound / blockSize * blockSize
        return stride(from: first, to: queryCount, by: blockSize).map { start in
            let range = start..<min(start + blockSize, queryCount)
            return VisitedBlock(range: range, needsMask: keys.upperBound - 1 > range.lowerBound)
        }
    }

    func mask(_ tile: ScoreTile) {
        for key in tile.keys {
            let row = tile.values + (key - tile.keys.lowerBound) * tile.stride
            // Queries before `key` are masked out.
            let maskedEnd = min(key, tile.queries.upperBound)
            if maskedEnd > tile.queries.lowerBound {
                row.update(repeating: -.infinity, count: maskedEnd - tile.queries.lowerBound)
            }
        }
    }
}

/// A score modification applied a tile at a time, in natural units (`scale · q·k`, before the mask).
protocol TileScoreModifying: Sendable {
    /// Replaces every score of `tile` by its modified value times `valueScale` (the loops' change of units, done
    /// in the same pass); when `derivative` is given, also writes ∂score′/∂score (unscaled) for each element
    /// there, with the tile's layout and stride. Vector work with a tile kernel runs on `kernels`.
    func modify<K: TileKernels>(
        _ tile: ScoreTile, derivative: UnsafeMutablePointer<Float>?, valueScale: Float, kernels: K.Type)
}

/// The CPU loops' tile: queries are a score tile's vector lanes (a multiple of the 64-lane micro-kernel block),
/// keys its rows. Block masks built for the CPU use the same sizes, so every block visited is exactly full or
/// partial.
enum CPUTile {
    static let queries = 64
    static let keys = 64
}
