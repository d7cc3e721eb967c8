/// The CPU attention loops read a block mask directly. They ask for blocks of their own size; a block mask built
/// with that size (or a multiple of it) answers exactly, any other size conservatively (a visited block needs
/// the mask unless every block-mask block it overlaps is full).
extension BlockMask: TileMasking {
    func keyBlocks(batch: Int, head: Int, queries: Range<Int>, keyCount: Int, blockSize: Int) -> [VisitedBlock] {
        guard !queries.isEmpty else { return [] }
        return byQueryBlock.visited(
            firstLine: line(batch: batch, head: head, block: 0, blocksPerLine: queryBlockCount),
            lineSize: queryBlockSize, major: queries, minorBlockSize: keyBlockSize, minorCount: min(keyCount, keyLength),
            size: blockSize)
    }

    func queryBlocks(batch: Int, head: Int, keys: Range<Int>, queryCount: Int, blockSize: Int) -> [VisitedBlock] {
        guard !keys.isEmpty else { return [] }
        return byKeyBlock.visited(
            firstLine: line(batch: batch, head: head, block: 0, blocksPerLine: keyBlockCount),
            lineSize: keyBlockSize, major: keys, minorBlockSize: queryBlockSize,
            minorCount: min(queryCount, queryLength), size: blockSize)
    }

    func mask(_ tile: ScoreTile) { evaluator.mask(tile) }
}
