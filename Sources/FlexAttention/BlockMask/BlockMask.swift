/// Which blocks of the score matrix a mask keeps, per (batch, head, query block): the key blocks that are *full*
/// (every element kept: the mask is skipped) and *partial* (the mask is evaluated); the others are empty and
/// never visited. The transpose (per key block, its query blocks) serves the backward pass.
///
/// Built by interval analysis of the mask: whole ranges of blocks are decided at once and only ranges the
/// analysis cannot decide are split, so a causal or document mask costs time in proportion to the query blocks
/// times a logarithm, plus the exact check of boundary blocks, which is itself done by halving regions. The
/// result is exact (the same as evaluating every element) and memory is a few runs per block row, never
/// `Sq × Skv`. A mask that reads neither `b` nor `h` is analysed once and shared by all batches and heads.
///
/// Building also checks the mask over the whole domain: a table index outside its table, or an Int division by
/// zero, anywhere in `0..<batch × 0..<heads × 0..<queryLength × 0..<keyLength` is an error, even in a branch of
/// `where` or an operand of `&&` that does not decide the result (every operand is evaluated, as in PyTorch).
public struct BlockMask: Sendable, CustomStringConvertible {
    /// The mask the blocks come from.
    public let mask: MaskMod
    /// Batches and heads of the domain.
    public let batch: Int, heads: Int
    /// Queries and keys.
    public let queryLength: Int, keyLength: Int
    /// Queries per query block and keys per key block.
    public let queryBlockSize: Int, keyBlockSize: Int
    /// Whether the analysis is per batch (the mask reads `b`) and per head (it reads `h`).
    public let dependsOnBatch: Bool, dependsOnHead: Bool

    let evaluator: MaskTileEvaluator
    /// Lines are query blocks.
    let byQueryBlock: BlockRuns
    /// Lines are key blocks.
    let byKeyBlock: BlockRuns

    /// Number of query blocks.
    public var queryBlockCount: Int { (queryLength + queryBlockSize - 1) / queryBlockSize }
    /// Number of key blocks.
    public var keyBlockCount: Int { (keyLength + keyBlockSize - 1) / keyBlockSize }

    /// The block size the CPU runs (its tiles are 64 queries × 64 keys): a block mask of this size is the one the
    /// CPU uses as it is, and its ``sparsity`` is the fraction of work the CPU skips.
    public static let cpuBlockSize = CPUTile.queries

    /// Analyses `mask` over `batch × heads × queryLength × keyLength` in blocks of `queryBlockSize × keyBlockSize`.
    ///
    /// Built once, it serves every call and layer that shares it: pass it as ``AttentionOptions/blockMask`` (its
    /// default block size is the CPU's; an ``AttentionPlan`` uses it for the kernels whose blocks are this size and
    /// builds the others once, when it is made). `heads` are the query heads.
    ///
    /// - Throws: ``ModError`` when the mask is malformed or leaves its domain (see above),
    ///   ``FlexAttentionError/invalidArgument(_:)`` when a size is not positive.
    public init(
        _ mask: MaskMod, batch: Int = 1, heads: Int = 1, queryLength: Int, keyLength: Int,
        queryBlockSize: Int = BlockMask.cpuBlockSize, keyBlockSize: Int = BlockMask.cpuBlockSize
    ) throws {
        let sizes = [batch, heads, queryLength, keyLength, queryBlockSize, keyBlockSize]
        guard sizes.allSatisfy({ $0 > 0 }) else {
            throw FlexAttentionError.invalidArgument(
                "block mask sizes must be positive: batch \(batch), heads \(heads), lengths \(queryLength)×\(keyLength),"
                    + " blocks \(queryBlockSize)×\(keyBlockSize)")
        }
        evaluator = try MaskTileEvaluator(mask, queryLength: queryLength, keyLength: keyLength)
        self.mask = mask
        (self.batch, self.heads, self.queryLength, self.keyLength) = (batch, heads, queryLength, keyLength)
        (self.queryBlockSize, self.keyBlockSize) = (queryBlockSize, keyBlockSize)
        dependsOnBatch = mask.expression.reads(.b)
        dependsOnHead = mask.expression.reads(.h)
        var builder = BlockMaskBuilder(
            evaluator: evaluator, extremes: evaluator.program.tables.map(TableExtremes.init),
            batches: dependsOnBatch ? batch : 1, heads: dependsOnHead ? heads : 1)
        byQueryBlock = try builder.runs(
            major: .init(length: queryLength, blockSize: queryBlockSize),
            minor: .init(length: keyLength, blockSize: keyBlockSize), majorIsQuery: true)
        byKeyBlock = try builder.runs(
            major: .init(length: keyLength, blockSize: keyBlockSize),
            minor: .init(length: queryLength, blockSize: queryBlockSize), majorIsQuery: false)
    }

    /// The line of (batch, head, block) in the runs, with the broadcast axes folded.
    func line(batch b: Int, head h: Int, block: Int, blocksPerLine: Int) -> Int {
        let analysedHeads = dependsOnHead ? heads : 1
        return ((dependsOnBatch ? b : 0) * analysedHeads + (dependsOnHead ? h : 0)) * blocksPerLine + block
    }

    /// The key blocks of query block `queryBlock` whose every element is kept.
    public func fullKeyBlocks(batch: Int = 0, head: Int = 0, queryBlock: Int) -> [Int] {
        byQueryBlock.blocks(line: line(batch: batch, head: head, block: queryBlock, blocksPerLine: queryBlockCount), isFull: true)
    }

    /// The key blocks of query block `queryBlock` that keep some elements and remove others.
    public func partialKeyBlocks(batch: Int = 0, head: Int = 0, queryBlock: Int) -> [Int] {
        byQueryBlock.blocks(line: line(batch: batch, head: head, block: queryBlock, blocksPerLine: queryBlockCount), isFull: false)
    }

    /// The query blocks that attend to every element of key block `keyBlock` (the transpose, for backward).
    public func fullQueryBlocks(batch: Int = 0, head: Int = 0, keyBlock: Int) -> [Int] {
        byKeyBlock.blocks(line: line(batch: batch, head: head, block: keyBlock, blocksPerLine: keyBlockCount), isFull: true)
    }

    /// The query blocks that attend to some elements of key block `keyBlock`.
    public func partialQueryBlocks(batch: Int = 0, head: Int = 0, keyBlock: Int) -> [Int] {
        byKeyBlock.blocks(line: line(batch: batch, head: head, block: keyBlock, blocksPerLine: keyBlockCount), isFull: false)
    }

    /// Full and partial blocks over the analysed batches and heads (one of each when broadcast).
    public var keptBlockCounts: (full: Int, partial: Int) {
        (byQueryBlock.count(isFull: true), byQueryBlock.count(isFull: false))
    }

    /// The fraction of blocks that are empty, hence skipped.
    public var sparsity: Double {
        let lines = (dependsOnBatch ? batch : 1) * (dependsOnHead ? heads : 1)
        let total = Double(lines * queryBlockCount * keyBlockCount)
        let (full, partial) = keptBlockCounts
        return 1 - Double(full + partial) / total
    }
}

extension BlockMask: Equatable {
    /// Block masks are equal when they analyse the same mask over the same domain in the same blocks (the analysis
    /// is a function of these).
    public static func == (a: BlockMask, b: BlockMask) -> Bool {
        (a.batch, a.heads, a.queryLength, a.keyLength, a.queryBlockSize, a.keyBlockSize)
            == (b.batch, b.heads, b.queryLength, b.keyLength, b.queryBlockSize, b.keyBlockSize) && a.mask == b.mask
    }
}

extension BlockMask {
    /// Whether this block mask covers `shape`'s batches, query heads and lengths (a mask that reads neither `b`
    /// nor `h` covers any batch or head count).
    func covers(_ shape: AttentionShape) -> Bool {
        (!dependsOnBatch || batch == shape.batch) && (!dependsOnHead || heads == shape.queryHeads)
            && queryLength == shape.queryLength && keyLength == shape.keyLength
    }

    /// This analysis if its blocks are `queryBlockSize × keyBlockSize`, else the same mask built at that size.
    func atBlockSize(queryBlockSize: Int, keyBlockSize: Int, for shape: AttentionShape) throws -> BlockMask {
        if self.queryBlockSize == queryBlockSize && self.keyBlockSize == keyBlockSize && covers(shape) { return self }
        return try BlockMask(
            mask, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength, keyLength: shape.keyLength,
            queryBlockSize: queryBlockSize, keyBlockSize: keyBlockSize)
    }
}
