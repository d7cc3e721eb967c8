/// A mask compiled for one pair of sequence lengths, evaluated over tiles and rectangles of the score matrix.
struct MaskTileEvaluator: Sendable {
    let program: ModProgram
    let queryLength: Int
    let keyLength: Int

    /// - Throws: ``ModError`` when the mask is not well formed.
    init(_ mask: MaskMod, queryLength: Int, keyLength: Int) throws {
        try mask.validate()
        program = ModProgram([mask.expression.node])
        self.queryLength = queryLength
        self.keyLength = keyLength
    }

    private func lanes(batch: Int, head: Int, key: Int, firstQuery: Int, count: Int) -> ModLanes {
        ModLanes(
            batch: batch, head: head, firstQuery: firstQuery, key: key, queryLength: queryLength,
            keyLength: keyLength, activeLanes: count)
    }

    /// Sets every score of `tile` the mask removes to −∞.
    func mask(_ tile: ScoreTile) {
        var machine = ModTileMachine(program)
        let result = program.outputs[0]
        tile.forEachLaneRun { key, firstQuery, count, offset in
            machine.run(lanes(batch: tile.batch, head: tile.head, key: key, firstQuery: firstQuery, count: count))
            let pointer = tile.values + offset
            let kept = machine.bool(result)
            storeLanes(loadLanes(pointer, count: count).replacing(with: -.infinity, where: .!kept), to: pointer, count: count)
        }
    }

    /// Whether the mask keeps some and removes some elements of the rectangle, evaluated element by element.
    /// - Throws: ``ModError`` for the first element where a table index is out of range or an Int divides by 0.
    func census(batch: Int, head: Int, queries: Range<Int>, keys: Range<Int>) throws -> (someKept: Bool, someRemoved: Bool) {
        var machine = ModTileMachine(program)
        let result = program.outputs[0]
        var (someKept, someRemoved) = (false, false)
        for key in keys {
            for start in stride(from: queries.lowerBound, to: queries.upperBound, by: 16) {
                let count = min(16, queries.upperBound - start)
                machine.run(lanes(batch: batch, head: head, key: key, firstQuery: start, count: count), watchingFaults: true)
                if let fault = machine.fault { throw fault }
                let kept = machine.bool(result)
                for lane in 0..<count {
                    if kept[lane] { someKept = true } else { someRemoved = true }
                }
            }
        }
        return (someKept, someRemoved)
    }
}
