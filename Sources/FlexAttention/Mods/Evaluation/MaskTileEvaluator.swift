import FlexAttentionSIMD

/// A mask compiled for one pair of sequence lengths, evaluated over tiles and rectangles of the score matrix.
struct MaskTileEvaluator: Sendable {
    let program: ModProgram
    private(set) var queryLength: Int
    private(set) var keyLength: Int

    /// - Throws: ``ModError`` when the mask is not well formed.
    init(_ mask: MaskMod, queryLength: Int, keyLength: Int) throws {
        try mask.validate()
        program = ModProgram([mask.expression.node])
        self.queryLength = queryLength
        self.keyLength = keyLength
    }

    /// The same mask compiled once, for sequences of other lengths.
    func atLengths(_ length: Int) -> MaskTileEvaluator {
        var evaluator = self
        (evaluator.queryLength, evaluator.keyLength) = (length, length)
        return evaluator
    }

    /// Sets every score of `tile` the mask removes to −∞.
    func mask(_ tile: ScoreTile) {
        let chunks = tile.chunks(queryLength: queryLength, keyLength: keyLength)
        var machine = ModTileMachine(program, chunkCount: chunks.count)
        let kept = machine.bools(program.outputs[0])
        chunks.forEachPiece(capacity: machine.capacity) { piece in
            machine.run(piece)
            tile.forEachLaneRun(of: piece) { chunk, count, offset in
                let pointer = tile.values + offset
                storeLanes(
                    loadLanes(pointer, count: count).replacing(with: -.infinity, where: .!kept[chunk]), to: pointer,
                    count: count)
            }
        }
    }

    /// Whether the mask keeps some and removes some elements of the rectangle, evaluated element by element.
    /// - Throws: ``ModError`` for the first element where a table index is out of range or an Int divides by 0.
    func census(batch: Int, head: Int, queries: Range<Int>, keys: Range<Int>) throws -> (someKept: Bool, someRemoved: Bool) {
        let chunks = ModChunks(
            batch: batch, head: head, queries: queries, keys: keys, queryLength: queryLength, keyLength: keyLength)
        var machine = ModTileMachine(program, chunkCount: chunks.count)
        let kept = machine.bools(program.outputs[0])
        var (someKept, someRemoved) = (false, false)
        try chunks.forEachPiece(capacity: machine.capacity) { piece in
            machine.run(piece, watchingFaults: true)
            if let fault = machine.fault { throw fault }
            piece.forEachChunk { chunk, _, _, lanes in
                for lane in 0..<lanes {
                    if kept[chunk][lane] { someKept = true } else { someRemoved = true }
                }
            }
        }
        return (someKept, someRemoved)
    }
}
