/// A score mod compiled for one pair of sequence lengths: its value, its derivative ∂score′/∂score, and the
/// gradient of each Float table it reads, a tile at a time.
struct ScoreModTileEvaluator: Sendable {
    /// value, ∂value/∂score.
    private let program: ModProgram
    /// For each Float table lookup: ∂value/∂lookup, then the lookup's index expressions.
    private let gradientProgram: ModProgram
    /// The lookups of `gradientProgram`: the table's slot in ``gradientTables`` and its index count.
    private let gradientLookups: [(slot: Int, table: ModTable)]
    /// The Float tables the mod reads, in first-use order: the order of the buffers given to
    /// ``accumulateTableGradients(scores:outputGradient:into:)``.
    let gradientTables: [ModTable]
    let queryLength: Int
    let keyLength: Int

    /// - Throws: ``ModError`` when the mod is not well formed.
    init(_ scoreMod: ScoreMod, queryLength: Int, keyLength: Int) throws {
        try scoreMod.validate()
        let node = scoreMod.expression.node
        program = ModProgram([node, node.derivative(withRespectTo: .variable(.score)).node])
        var tables: [ModTable] = []
        var lookups: [(slot: Int, table: ModTable)] = []
        var outputs: [ModNode] = []
        for lookup in node.floatLookups {
            guard case .lookup(let table, let indices) = lookup else { continue }
            let slot = tables.firstIndex(of: table) ?? tables.count
            if slot == tables.count { tables.append(table) }
            lookups.append((slot, table))
            outputs.append(node.derivative(withRespectTo: lookup).node)
            outputs += indices
        }
        gradientProgram = ModProgram(outputs)
        gradientLookups = lookups
        gradientTables = tables
        self.queryLength = queryLength
        self.keyLength = keyLength
    }

    private func lanes(_ tile: ScoreTile, key: Int, firstQuery: Int, count: Int, scores: SIMD16<Float>) -> ModLanes {
        ModLanes(
            batch: tile.batch, head: tile.head, firstQuery: firstQuery, key: key, queryLength: queryLength,
            keyLength: keyLength, score: scores, activeLanes: count)
    }

    /// Replaces every score of `tile` by its modified value and, when `derivative` is given, writes
    /// ∂score′/∂score there with the tile's layout.
    func modify(_ tile: ScoreTile, derivative: UnsafeMutablePointer<Float>?) {
        var machine = ModTileMachine(program)
        let (value, slope) = (program.outputs[0], program.outputs[1])
        tile.forEachLaneRun { key, firstQuery, count, offset in
            let scores = loadLanes(tile.values + offset, count: count)
            machine.run(lanes(tile, key: key, firstQuery: firstQuery, count: count, scores: scores))
            storeLanes(machine.float(value), to: tile.values + offset, count: count)
            if let derivative { storeLanes(machine.float(slope), to: derivative + offset, count: count) }
        }
    }

    /// Adds ∂L/∂table to one buffer per table of ``gradientTables`` (row-major, the table's element count),
    /// given the unmodified scores of a tile and ∂L/∂score′ in the same layout. Elements run key by key, then
    /// query by query, so the sums are the same on every run; a zero ∂L/∂score′ (a masked score) adds nothing.
    func accumulateTableGradients(
        scores tile: ScoreTile, outputGradient: UnsafePointer<Float>, into gradients: [UnsafeMutablePointer<Float>]
    ) {
        guard !gradientLookups.isEmpty else { return }
        var machine = ModTileMachine(gradientProgram)
        tile.forEachLaneRun { key, firstQuery, count, offset in
            let upstream = loadLanes(outputGradient + offset, count: count)
            let scores = loadLanes(tile.values + offset, count: count)
            machine.run(lanes(tile, key: key, firstQuery: firstQuery, count: count, scores: scores))
            var output = 0
            for (slot, table) in gradientLookups {
                let contribution = upstream * machine.float(gradientProgram.outputs[output])
                var offsets = SIMD16<Int>.zero
                for (axis, extent) in table.shape.enumerated() {
                    let index = machine.int(gradientProgram.outputs[output + 1 + axis])
                    offsets = offsets &* extent &+ index.clamped(lowerBound: .zero, upperBound: SIMD16(repeating: extent - 1))
                }
                output += 1 + table.shape.count
                for lane in 0..<count where upstream[lane] != 0 {
                    gradients[slot][offsets[lane]] += contribution[lane]
                }
            }
        }
    }
}

extension ScoreModTileEvaluator: TileScoreModifying {}
