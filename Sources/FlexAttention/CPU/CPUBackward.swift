import FlexAttentionSIMD

/// The FlashAttention backward pass on the CPU: dQ, dK, dV from dO, recomputing the probabilities from the saved
/// log-sum-exp.
///
/// One work item owns one chunk of key blocks of one (batch, key/value head). It walks the query heads that share
/// that key head and, for each key block, the query blocks the mask keeps, accumulating dK and dV in its own
/// buffers and dQ in a buffer of its chunk. Chunks split the keys only when there are too few key heads to fill
/// the cores, and their count depends on the shape alone; the chunks' dQ parts are then summed in chunk order.
/// No two items write the same memory and every sum runs in a fixed order, so the result is the same bits for
/// any thread count.
struct CPUBackward {
    let shape: AttentionShape
    let scale: Float
    let mods: CPUMods
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let output: Tensor
    let logSumExp: Tensor
    let outputGradient: Tensor
    let gradientDType: DType

    /// Work items wanted before the keys of a head are split into chunks.
    static let targetItems = 16

    func run() throws -> AttentionGradients {
        guard logSumExp.dtype == .float32 else {
            throw FlexAttentionError.mixedDTypes(expected: .float32, actual: logSumExp.dtype, tensor: "log-sum-exp")
        }
        let dq = try Tensor(zeros: query.shape, dtype: gradientDType)
        let dk = try Tensor(zeros: key.shape, dtype: gradientDType)
        let dv = try Tensor(zeros: value.shape, dtype: gradientDType)
        let keyBlocks = (shape.keyLength + CPUTile.keys - 1) / CPUTile.keys
        let heads = shape.batch * shape.keyValueHeads
        let chunks = max(1, min(keyBlocks, (Self.targetItems + heads - 1) / heads))
        let blocksPerChunk = (keyBlocks + chunks - 1) / chunks
        let tables = mods.scoreModifier?.gradientTables ?? []
        let plan = BackwardPlan(
            shape: shape, scale: scale, mods: mods, tableSizes: tables.map(\.count),
            query: StridedRows(query), key: StridedRows(key), value: StridedRows(value),
            output: StridedRows(output), outputGradient: StridedRows(outputGradient),
            logSumExp: logSumExp, dq: StridedRows(dq), dk: StridedRows(dk), dv: StridedRows(dv),
            chunkLength: blocksPerChunk * CPUTile.keys, chunks: (keyBlocks + blocksPerChunk - 1) / blocksPerChunk)
        try CPUWorkingMemory.require(perThread: plan.workingFloatsPerItem, shared: plan.sharedWorkingFloats)
        let tableGradients = InstructionSet.current.withKernels { kernels in plan.run(kernels: kernels) }
        var gradientsByName: [String: Tensor] = [:]
        for (table, values) in zip(tables, tableGradients) {
            gradientsByName[table.name] = try Tensor(values, shape: table.shape)
        }
        return AttentionGradients(query: dq, key: dk, value: dv, tableGradients: gradientsByName)
    }
}

/// Everything the backward work items read and write, as raw views that may cross threads.
private struct BackwardPlan: @unchecked Sendable {
    let shape: AttentionShape
    let scale: Float
    let mods: CPUMods
    /// Element counts of the Float tables the score mod reads, which get gradients.
    let tableSizes: [Int]
    let query: StridedRows
    let key: StridedRows
    let value: StridedRows
    let output: StridedRows
    let outputGradient: StridedRows
    let logSumExp: Tensor
    let dq: StridedRows
    let dk: StridedRows
    let dv: StridedRows
    let chunkLength: Int
    let chunks: Int

    var paddedQueries: Int { (shape.queryLength + CPUTile.queries - 1) / CPUTile.queries * CPUTile.queries }

    /// Floats a work item holds: its workspace (packed queries, the chunk's dK and dV), its dQ rows and its tiles.
    var workingFloatsPerItem: Int {
        let tile = CPUTile.keys * CPUTile.queries
        return workspaceCount + paddedQueries * dPadded + CPUTile.keys * (dPadded + shape.valueDim) + 4 * tile
    }

    /// Floats held across items: the chunks' dQ parts (when the keys are split) and each item's table gradients.
    var sharedWorkingFloats: Int {
        let parts = chunks > 1 ? chunks * shape.batch * shape.queryHeads * paddedQueries * dPadded : 0
        return parts + shape.batch * shape.keyValueHeads * chunks * tableSizes.reduce(0, +)
    }

    /// Floats of one item's workspace.
    private var workspaceCount: Int {
        PackedQueryHead.count(queries: paddedQueries, headDim: shape.headDim, valueDim: shape.valueDim)
            + chunkLength * (dPadded + dvPadded)
    }
    var dPadded: Int { paddedToLanes(shape.headDim) }
    var dvPadded: Int { paddedToLanes(shape.valueDim) }

    /// Runs every work item and returns the table gradients, one array per table.
    func run<K: TileKernels>(kernels: K.Type) -> [[Float]] {
        let heads = shape.batch * shape.keyValueHeads
        let items = heads * chunks
        // With several chunks, each keeps its dQ parts (per query head, over the queries it visits) until all
        // are done; they are then summed in chunk order.
        let partCount = chunks > 1 ? chunks * shape.batch * shape.queryHeads : 0
        let parts = UnsafeMutablePointer<QueryGradientPart>.allocate(capacity: max(1, partCount))
        parts.initialize(repeating: QueryGradientPart(), count: max(1, partCount))
        defer { parts.deallocate() }
        let partsPointer = SendablePointer(parts)
        // Table gradients of each item, summed in item order.
        let tableTotal = tableSizes.reduce(0, +)
        let tableParts = Scratch(items * tableTotal)
        let tablePartsPointer = SendablePointer(tableParts.pointer)
        // Per item: the packed query head, then dK and dV of the chunk's keys.
        let workspaces = WorkspacePool(count: workspaceCount)
        parallelFor(items) { item in
            let chunk = item / heads
            let head = item % heads
            workspaces.withBuffer { workspace in
                runChunk(K.self, batch: head / shape.keyValueHeads, kvHead: head % shape.keyValueHeads,
                         chunk: chunk, workspace: workspace, dqParts: chunks > 1 ? partsPointer.value : nil,
                         tableGradients: tablePartsPointer.value + item * tableTotal)
            }
        }
        if chunks > 1 { sumQueryGradientParts(parts) }
        var offset = 0
        return tableSizes.map { size in
            var total = [Float](repeating: 0, count: size)
            for item in 0..<items {
                let part = tableParts.pointer + item * tableTotal + offset
                for i in 0..<size { total[i] += part[i] }
            }
            offset += size
            return total
        }
    }

    /// Writes dQ for every (batch, query head) as the chunk-ordered sum of its parts, and frees them. Queries no
    /// chunk visited keep the zeros dQ was created with.
    private func sumQueryGradientParts(_ parts: UnsafeMutablePointer<QueryGradientPart>) {
        let heads = shape.batch * shape.queryHeads
        let partsPointer = SendablePointer(parts)
        parallelFor(heads) { head in
            let visited = (0..<chunks).compactMap { chunk -> (queries: Range<Int>, rows: UnsafeMutablePointer<Float>)? in
                let part = partsPointer.value[chunk * heads + head]
                return part.rows.map { (part.queries, $0) }
            }
            guard let first = visited.map(\.queries.lowerBound).min(),
                  let end = visited.map(\.queries.upperBound).max() else { return }
            // Row by row, so the sum stays in cache: 0, then each part holding the row, in chunk order.
            let row = Scratch(dPadded)
            for q in first..<end {
                row.pointer.update(repeating: 0, count: dPadded)
                for part in visited where part.queries.contains(q) {
                    let source = part.rows + (q - part.queries.lowerBound) * dPadded
                    for c in 0..<dPadded { row.pointer[c] += source[c] }
                }
                writeQueryGradient(row.pointer, queries: q..<q + 1, batch: head / shape.queryHeads, head: head % shape.queryHeads)
            }
            for part in visited { part.rows.deallocate() }
        }
    }

    /// Writes dQ rows `queries` (scaled) from `rows`, which holds them consecutively.
    private func writeQueryGradient(_ rows: UnsafeMutablePointer<Float>, queries: Range<Int>, batch b: Int, head h: Int) {
        for q in queries {
            let row = rows + (q - queries.lowerBound) * dPadded
            for c in 0..<shape.headDim { row[c] *= scale }
            dq.write(b, h, q, from: row)
        }
    }

    private func runChunk<K: TileKernels>(
        _: K.Type, batch b: Int, kvHead: Int, chunk: Int, workspace: UnsafeMutablePointer<Float>,
        dqParts: UnsafeMutablePointer<QueryGradientPart>?, tableGradients: UnsafeMutablePointer<Float>
    ) {
        let keys = chunk * chunkLength..<min((chunk + 1) * chunkLength, shape.keyLength)
        let (d, dvDim) = (shape.headDim, shape.valueDim)
        let packed = PackedQueryHead(workspace, queries: paddedQueries, headDim: d, valueDim: dvDim)
        let keyGradient = workspace + PackedQueryHead.count(queries: paddedQueries, headDim: d, valueDim: dvDim)
        let valueGradient = keyGradient + keys.count * dPadded
        keyGradient.update(repeating: 0, count: keys.count * (dPadded + dvPadded))
        let keyRows = Scratch(CPUTile.keys * dPadded)
        let valueRows = Scratch(CPUTile.keys * dvDim)
        let tileLanes = CPUTile.queries
        let probabilities = Scratch(CPUTile.keys * tileLanes)
        let scoreGradients = Scratch(CPUTile.keys * tileLanes)
        let modifier = mods.scoreModifier
        // Unmodified scores are kept only for the table gradients.
        let rawScores = Scratch(tableSizes.isEmpty ? 0 : CPUTile.keys * tileLanes)
        let slopes = Scratch(modifier == nil ? 0 : CPUTile.keys * tileLanes)
        var tableBuffers: [UnsafeMutablePointer<Float>] = []
        var nextTable = tableGradients
        for size in tableSizes {
            tableBuffers.append(nextTable)
            nextTable += size
        }

        for h in kvHead * shape.groupSize..<(kvHead + 1) * shape.groupSize {
            let visits = stride(from: keys.lowerBound, to: keys.upperBound, by: CPUTile.keys).map { k0 in
                let block = k0..<min(k0 + CPUTile.keys, keys.upperBound)
                return (keys: block, queryBlocks: mods.masking.queryBlocks(
                    batch: b, head: h, keys: block, queryCount: shape.queryLength, blockSize: tileLanes))
            }
            let visited = visits.flatMap(\.queryBlocks)
            let neededQueries = (visited.map(\.range.lowerBound).min() ?? 0)..<(visited.map(\.range.upperBound).max() ?? 0)
            guard !neededQueries.isEmpty else { continue }
            // A query block is packed when first visited, so only visited ones are (few, for a window mask) and
            // its packed rows are still in cache for the key blocks that follow.
            var packedBlocks = [Bool](repeating: false, count: paddedQueries / tileLanes)
            // dQ of the visited queries, row q at (q − first visited) · dPadded.
            let queryGradient = UnsafeMutablePointer<Float>.allocate(capacity: neededQueries.count * dPadded)
            queryGradient.initialize(repeating: 0, count: neededQueries.count * dPadded)
            let queryGradientBase = neededQueries.lowerBound
            for (block, queryBlocks) in visits where !queryBlocks.isEmpty {
                // K serves as a B operand too (dQ += dS·K), so in place only with contiguous, unpadded rows.
                let (keyPointer, keyRowStride, keyColumnStride) = key.operand(
                    b, kvHead, rows: block, scratch: keyRows.pointer, ld: dPadded, contiguousLanes: dPadded)
                let (valuePointer, valueRowStride, valueColumnStride) = value.operand(
                    b, kvHead, rows: block, scratch: valueRows.pointer, ld: dvDim)
                let local = block.lowerBound - keys.lowerBound
                for queryBlock in queryBlocks {
                    let q0 = queryBlock.range.lowerBound
                    let depth = queryBlock.range.count
                    for first in stride(from: q0 / tileLanes * tileLanes, to: queryBlock.range.upperBound, by: tileLanes)
                    where !packedBlocks[first / tileLanes] {
                        pack(batch: b, head: h, queries: first..<min(first + tileLanes, shape.queryLength), into: packed)
                        packedBlocks[first / tileLanes] = true
                    }
                    // Sᵀ = K Qᵀ, modified, in base-2 units, masked, then P = 2^(S − LSE).
                    K.gemm(GemmOperands(
                        rows: block.count, lanes: tileLanes, depth: d, a: keyPointer, aRowStride: keyRowStride,
                        aDepthStride: keyColumnStride, b: packed.queryT + q0, ldb: paddedQueries, c: probabilities.pointer,
                        ldc: tileLanes, accumulate: false))
                    let tile = ScoreTile(
                        values: probabilities.pointer, stride: tileLanes, batch: b, head: h,
                        queries: queryBlock.range, keys: block)
                    if let modifier {
                        if !tableSizes.isEmpty {
                            rawScores.pointer.update(from: probabilities.pointer, count: block.count * tileLanes)
                        }
                        modifier.modify(tile, derivative: slopes.pointer, valueScale: .log2e, kernels: K.self)
                    }
                    if queryBlock.needsMask { mods.masking.mask(tile) }
                    K.probabilities(
                        tile: probabilities.pointer, rows: block.count, lanes: tileLanes, ld: tileLanes,
                        lse2: packed.lse2 + q0)
                    // dPᵀ = V dOᵀ.
                    K.gemm(GemmOperands(
                        rows: block.count, lanes: tileLanes, depth: dvDim, a: valuePointer,
                        aRowStride: valueRowStride, aDepthStride: valueColumnStride, b: packed.outputGradientT + q0, ldb: paddedQueries,
                        c: scoreGradients.pointer, ldc: tileLanes, accumulate: false))
                    // dV += Pᵀ-rows · dO.
                    K.gemm(GemmOperands(
                        rows: block.count, lanes: dvPadded, depth: depth, a: probabilities.pointer,
                        aRowStride: tileLanes, aDepthStride: 1, b: packed.outputGradient + q0 * dvPadded,
                        ldb: dvPadded, c: valueGradient + local * dvPadded, ldc: dvPadded,
                        accumulate: true))
                    // dS = P ∘ (dP − Delta), the gradient of the (modified) natural-unit scores; through a score
                    // mod it feeds the tables it reads and is multiplied by ∂score′/∂score.
                    // The tables' gradients need dS before the slope; without tables, one pass applies it.
                    let slopeNow = modifier != nil && tableSizes.isEmpty
                    K.scoreGradient(
                        p: probabilities.pointer, dp: scoreGradients.pointer, rows: block.count, lanes: tileLanes,
                        ld: tileLanes, delta: packed.delta + q0, slope: slopeNow ? UnsafePointer(slopes.pointer) : nil)
                    if let modifier, !slopeNow {
                        var raw = tile
                        raw.values = rawScores.pointer
                        modifier.accumulateTableGradients(
                            scores: raw, outputGradient: scoreGradients.pointer, into: tableBuffers)
                        let count = block.count * tileLanes
                        // Where nothing flows back (masked scores) the slope may be undefined: leave those 0.
                        for i in 0..<count where scoreGradients.pointer[i] != 0 { scoreGradients.pointer[i] *= slopes.pointer[i] }
                    }
                    // dK += dSᵀ-rows · Q.
                    K.gemm(GemmOperands(
                        rows: block.count, lanes: dPadded, depth: depth, a: scoreGradients.pointer,
                        aRowStride: tileLanes, aDepthStride: 1, b: packed.query + q0 * dPadded, ldb: dPadded,
                        c: keyGradient + local * dPadded, ldc: dPadded, accumulate: true))
                    // dQ += dS · K.
                    K.gemm(GemmOperands(
                        rows: depth, lanes: dPadded, depth: block.count, a: scoreGradients.pointer,
                        aRowStride: 1, aDepthStride: tileLanes, b: keyPointer, ldb: keyRowStride,
                        c: queryGradient + (q0 - queryGradientBase) * dPadded, ldc: dPadded, accumulate: true))
                }
            }
            if let dqParts {
                dqParts[chunk * shape.batch * shape.queryHeads + b * shape.queryHeads + h] =
                    QueryGradientPart(queries: neededQueries, rows: queryGradient)
            } else {
                writeQueryGradient(queryGradient, queries: neededQueries, batch: b, head: h)
                queryGradient.deallocate()
            }
        }
        for k in keys {
            let local = k - keys.lowerBound
            let row = keyGradient + local * dPadded
            for c in 0..<d { row[c] *= scale }
            dk.write(b, kvHead, k, from: row)
            dv.write(b, kvHead, k, from: valueGradient + local * dvPadded)
        }
    }

    /// Fills `packed`, for `queries`, with one query head's operands: Qᵀ scaled to base-2 score units, Q, dOᵀ, dO, the base-2
    /// log-sum-exp (+∞ for empty rows) and Delta = rowsum(dO ∘ O).
    private func pack(batch b: Int, head h: Int, queries: Range<Int>, into packed: PackedQueryHead) {
        let queryFactor = mods.queryFactor(scale: scale)
        let lseBase = logSumExp.storage.baseAddress.assumingMemoryBound(to: Float.self) + logSumExp.offset
            + b * logSumExp.strides[0] + h * logSumExp.strides[1]
        let lseStride = logSumExp.strides[2]
        for q in queries {
            let queryRow = packed.query + q * dPadded
            let dORow = packed.outputGradient + q * dvPadded
            query.read(b, h, q, into: queryRow)
            outputGradient.read(b, h, q, into: dORow)
            output.read(b, h, q, into: packed.outputRow)
            var delta: Float = 0
            for c in 0..<shape.valueDim { delta += dORow[c] * packed.outputRow[c] }
            packed.delta[q] = delta
            let l = lseBase[q * lseStride]
            packed.lse2[q] = l == -.infinity ? .infinity : l * Float.log2e
        }
        transpose(
            packed.query, queries: queries, columns: shape.headDim, ld: dPadded, into: packed.queryT,
            factor: queryFactor)
        transpose(
            packed.outputGradient, queries: queries, columns: shape.valueDim, ld: dvPadded,
            into: packed.outputGradientT)
    }

    /// `target[c * paddedQueries + q] = source[q * ld + c] · factor` for `q` in `queries`, a tile of rows at a time so
    /// that both sides stay in cache.
    private func transpose(
        _ source: UnsafePointer<Float>, queries: Range<Int>, columns: Int, ld: Int,
        into target: UnsafeMutablePointer<Float>, factor: Float = 1
    ) {
        for q0 in stride(from: queries.lowerBound, to: queries.upperBound, by: CPUTile.queries) {
            let rows = min(CPUTile.queries, queries.upperBound - q0)
            for c in 0..<columns {
                let column = target + c * paddedQueries + q0
                for i in 0..<rows { column[i] = source[(q0 + i) * ld + c] * factor }
            }
        }
    }
}

/// One query head's backward operands, packed for the GEMMs, in a workspace of ``count(queries:headDim:valueDim:)``
/// Floats: `queries` is the padded query count. Rows past the real queries are never written, so they stay the
/// zeros the workspace was made with; a row the caller does not pack holds a previous item's data and is not read.
private struct PackedQueryHead {
    /// `[D][queries]`, scaled to base-2 score units.
    let queryT: UnsafeMutablePointer<Float>
    /// `[queries][D padded]`.
    let query: UnsafeMutablePointer<Float>
    /// `[Dv][queries]`.
    let outputGradientT: UnsafeMutablePointer<Float>
    /// `[queries][Dv padded]`.
    let outputGradient: UnsafeMutablePointer<Float>
    /// Base-2 log-sum-exp per query, +∞ for empty rows.
    let lse2: UnsafeMutablePointer<Float>
    /// rowsum(dO ∘ O) per query.
    let delta: UnsafeMutablePointer<Float>
    /// Room for one row of O.
    let outputRow: UnsafeMutablePointer<Float>

    private static func sizes(queries n: Int, headDim d: Int, valueDim dv: Int) -> [Int] {
        [d * n, n * paddedToLanes(d), dv * n, n * paddedToLanes(dv), n, n, dv]
    }

    static func count(queries: Int, headDim: Int, valueDim: Int) -> Int {
        sizes(queries: queries, headDim: headDim, valueDim: valueDim).reduce(0, +)
    }

    init(_ workspace: UnsafeMutablePointer<Float>, queries n: Int, headDim d: Int, valueDim dv: Int) {
        var next = workspace
        var pointers = [UnsafeMutablePointer<Float>]()
        for size in Self.sizes(queries: n, headDim: d, valueDim: dv) {
            pointers.append(next)
            next += size
        }
        (queryT, query, outputGradientT, outputGradient) = (pointers[0], pointers[1], pointers[2], pointers[3])
        (lse2, delta, outputRow) = (pointers[4], pointers[5], pointers[6])
    }
}

/// One work item's dQ for one query head: the rows of `queries`, consecutive, owned until summed; no rows when
/// the item visited none of that head's queries.
private struct QueryGradientPart {
    var queries: Range<Int> = 0..<0
    var rows: UnsafeMutablePointer<Float>?
}
