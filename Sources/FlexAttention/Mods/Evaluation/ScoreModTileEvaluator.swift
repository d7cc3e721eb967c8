import FlexAttentionSIMD

/// A score mod compiled for one pair of sequence lengths: its value, its derivative ∂score′/∂score, and the
/// gradient of each Float table it reads, a tile at a time.
struct ScoreModTileEvaluator: Sendable {
    /// value, ∂value/∂score; nil when made without gradients.
    private let program: ModProgram?
    /// value alone, for tiles whose derivative is not asked for.
    private let valueProgram: ModProgram
    /// The mod as a scaled tanh, which a tile kernel runs instead of the programs.
    private let scaledTanh: ScaledTanhPattern?
    /// For each Float table lookup: ∂value/∂lookup, then the lookup's index expressions.
    private let gradientProgram: ModProgram
    /// The lookups of `gradientProgram`: the table's slot in ``gradientTables`` and its index count.
    private let gradientLookups: [(slot: Int, table: ModTable)]
    /// The Float tables the mod reads, in first-use order: the order of the buffers given to
    /// ``accumulateTableGradients(scores:outputGradient:into:)``.
    let gradientTables: [ModTable]
    let queryLength: Int
    let keyLength: Int

    /// - Parameter includesGradients: whether to differentiate the mod, for backward; without, only the value
    ///   can be asked for.
    /// - Throws: ``ModError`` when the mod is not well formed.
    init(_ scoreMod: ScoreMod, queryLength: Int, keyLength: Int, includesGradients: Bool = true) throws {
        try scoreMod.validate()
        let node = scoreMod.expression.node
        program = includesGradients ? ModProgram([node, node.derivative(withRespectTo: .variable(.score)).node]) : nil
        valueProgram = ModProgram([node])
        scaledTanh = ScaledTanhPattern(node)
        var tables: [ModTable] = []
        var lookups: [(slot: Int, table: ModTable)] = []
        var outputs: [ModNode] = []
        for lookup in includesGradients ? node.floatLookups : [] {
            guard case .lookup(let table, let indices) = lookup.operation else { continue }
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

    /// Replaces every score of `tile` by its modified value times `valueScale` and, when `derivative` is given
    /// (to an evaluator made with gradients), writes ∂score′/∂score (unscaled) there with the tile's layout; vector work that has a tile kernel runs on
    /// `kernels`.
    func modify<K: TileKernels>(
        _ tile: ScoreTile, derivative: UnsafeMutablePointer<Float>?, valueScale: Float = 1, kernels: K.Type
    ) {
        if let scaledTanh {
            K.scaledTanh(ScaledTanhOperands(
                tile: tile.values, rows: tile.keys.count, columns: tile.queries.count, ld: tile.stride,
                inputScale: scaledTanh.inputScale, outputScale: scaledTanh.outputScale * valueScale,
                slope: derivative, slopeScale: scaledTanh.outputScale * scaledTanh.inputScale))
            return
        }
        let sloped = derivative == nil ? nil : self.program
        let program = sloped ?? valueProgram
        let chunks = tile.chunks(queryLength: queryLength, keyLength: keyLength)
        var machine = ModTileMachine(program, chunkCount: chunks.count)
        let (scores, value) = (machine.scores, machine.floats(program.outputs[0]))
        let slope = sloped.map { machine.floats($0.outputs[1]) }
        chunks.forEachPiece(capacity: machine.capacity) { piece in
            tile.forEachLaneRun(of: piece) { chunk, count, offset in
                scores[chunk] = loadLanes(tile.values + offset, count: count)
            }
            machine.run(piece)
            tile.forEachLaneRun(of: piece) { chunk, count, offset in
                storeLanes(value[chunk] * valueScale, to: tile.values + offset, count: count)
                if let derivative, let slope { storeLanes(slope[chunk], to: derivative + offset, count: count) }
            }
        }
    }

    /// ``modify(_:derivative:valueScale:kernels:)`` with the kernels of ``InstructionSet/current``.
    func modify(_ tile: ScoreTile, derivative: UnsafeMutablePointer<Float>?) {
        InstructionSet.current.withKernels { modify(tile, derivative: derivative, kernels: $0) }
    }

    /// Adds ∂L/∂table to one buffer per table of ``gradientTables`` (row-major, the table's element count),
    /// given the unmodified scores of a tile and ∂L/∂score′ in the same layout. Elements run key by key, then
    /// query by query, so the sums are the same on every run; a zero ∂L/∂score′ (a masked score) adds nothing.
    func accumulateTableGradients(
        scores tile: ScoreTile, outputGradient: UnsafePointer<Float>, into gradients: [UnsafeMutablePointer<Float>]
    ) {
        guard !gradientLookups.isEmpty else { return }
        let chunks = tile.chunks(queryLength: queryLength, keyLength: keyLength)
        var machine = ModTileMachine(gradientProgram, chunkCount: chunks.count)
        let scores = machine.scores
        chunks.forEachPiece(capacity: machine.capacity) { piece in
            tile.forEachLaneRun(of: piece) { chunk, count, offset in
                scores[chunk] = loadLanes(tile.values + offset, count: count)
            }
            machine.run(piece)
            tile.forEachLaneRun(of: piece) { chunk, count, offset in
                let upstream = loadLanes(outputGradient + offset, count: count)
                var output = 0
                for (slot, table) in gradientLookups {
                    let contribution = upstream * machine.floats(gradientProgram.outputs[output])[chunk]
                    var offsets = SIMD16<Int>.zero
                    for (axis, extent) in table.shape.enumerated() {
                        let index = machine.ints(gradientProgram.outputs[output + 1 + axis])[chunk]
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
}

extension ScoreModTileEvaluator: TileScoreModifying {}
