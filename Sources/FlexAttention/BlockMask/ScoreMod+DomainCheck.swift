extension ScoreMod {
    /// Checks that every table index is inside its table and no Int divides by zero, for every
    /// `(b, h, q, kv)` of `batch × heads × queryLength × keyLength`. Regions that interval analysis proves valid are
    /// skipped whole; the rest are halved down to small ones checked element by element.
    ///
    /// - Throws: ``ModError/tableIndexOutOfRange(table:axis:index:extent:at:)`` or
    ///   ``ModError/divisionByZero(at:)`` for the first element found, or the mod's validation errors.
    public func checkIndices(batch: Int, heads: Int, queryLength: Int, keyLength: Int) throws {
        try validate()
        try checkModIndices(expression.node, batch: batch, heads: heads, queryLength: queryLength, keyLength: keyLength)
    }
}

extension MaskMod {
    /// Checks, as ``ScoreMod/checkIndices(batch:heads:queryLength:keyLength:)`` does, that the mask reads every
    /// table inside its bounds and divides no Int by zero over the domain (block masks check this as they are
    /// built; decoding, which evaluates the mask without one, checks it here).
    func checkIndices(batch: Int, heads: Int, queryLength: Int, keyLength: Int) throws {
        try validate()
        try checkModIndices(expression.node, batch: batch, heads: heads, queryLength: queryLength, keyLength: keyLength)
    }
}

/// The domain check of a mod's expression: regions that interval analysis proves valid are skipped whole, the rest
/// halved down to small ones checked element by element.
private func checkModIndices(_ node: ModNode, batch: Int, heads: Int, queryLength: Int, keyLength: Int) throws {
    guard batch > 0, heads > 0, queryLength > 0, keyLength > 0 else { return }
    let program = ModProgram([node])
    var intervals = ModIntervalMachine(
        program, queryLength: queryLength, keyLength: keyLength, extremes: program.tables.map(TableExtremes.init))
    var exact = ModTileMachine(program, chunkCount: .max)
    var pending = [ScoreRegion(batches: 0..<batch, heads: 0..<heads, queries: 0..<queryLength, keys: 0..<keyLength)]
    while let region = pending.popLast() {
        intervals.run(region)
        if intervals.isSafe { continue }
        guard region.elementCount <= MaskRegionAnalysis.leafElements else {
            let (first, second) = region.halves
            pending += [second, first]
            continue
        }
        for b in region.batches {
            for h in region.heads {
                let chunks = ModChunks(
                    batch: b, head: h, queries: region.queries, keys: region.keys, queryLength: queryLength,
                    keyLength: keyLength)
                try chunks.forEachPiece(capacity: exact.capacity) { piece in
                    exact.run(piece, watchingFaults: true)
                    if let fault = exact.fault { throw fault }
                }
            }
        }
    }
}
