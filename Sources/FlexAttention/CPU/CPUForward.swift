import FlexAttentionSIMD

#if canImport(Glibc)
import Glibc
#endif

/// The FlashAttention forward pass on the CPU.
///
/// One work item is one tile of ``CPUTile/queries`` queries of one (batch, query head). Its queries, pre-multiplied by
/// `scale · log2(e)`, are packed transposed (`[D][queries]`), so the scores of a key block come out key-major from
/// one GEMM whose A operand is read straight from K. The softmax runs in base 2 along the contiguous query axis,
/// and the output accumulates transposed (`[Dv][queries]`), from a GEMM whose A operand is read straight from V.
/// Per item the memory is a few tiles, whatever the sequence lengths.
struct CPUForward {
    let shape: AttentionShape
    let scale: Float
    let mods: CPUMods
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let outputDType: DType

    func run() throws -> AttentionOutput {
        let output = try Tensor(
            zeros: [shape.batch, shape.queryHeads, shape.queryLength, shape.valueDim], dtype: outputDType)
        let logSumExp = try Tensor(zeros: [shape.batch, shape.queryHeads, shape.queryLength], dtype: .float32)
        // A work item's tiles: Qᵀ, scores, Oᵀ, statistics, and K and V rows converted to Float32.
        let (lanes, keys) = (CPUTile.queries, CPUTile.keys)
        try CPUWorkingMemory.require(
            perThread: (shape.headDim + keys + shape.valueDim + 3) * lanes + keys * (shape.headDim + shape.valueDim),
            shared: 0)
        let plan = ForwardPlan(
            shape: shape, queryFactor: mods.queryFactor(scale: scale), mods: mods,
            query: StridedRows(query), key: StridedRows(key), value: StridedRows(value),
            output: StridedRows(output),
            logSumExp: logSumExp.storage.baseAddress.assumingMemoryBound(to: Float.self))
        let tiles = (shape.queryLength + CPUTile.queries - 1) / CPUTile.queries
        InstructionSet.current.withKernels { kernels in
            plan.run(kernels: kernels, tiles: tiles)
        }
        return AttentionOutput(output: output, logSumExp: logSumExp)
    }
}

/// Everything one forward work item reads, as raw views that may cross threads.
private struct ForwardPlan: @unchecked Sendable {
    let shape: AttentionShape
    let queryFactor: Float
    let mods: CPUMods
    let query: StridedRows
    let key: StridedRows
    let value: StridedRows
    let output: StridedRows
    let logSumExp: UnsafeMutablePointer<Float>

    func run<K: TileKernels>(kernels: K.Type, tiles: Int) {
        let heads = shape.batch * shape.queryHeads
        parallelFor(heads * tiles) { item in
            // Later query tiles see more keys under a causal mask: hand them out first.
            let tile = tiles - 1 - item / heads
            let head = item % heads
            runTile(K.self, batch: head / shape.queryHeads, head: head % shape.queryHeads, tile: tile)
        }
    }

    private func runTile<K: TileKernels>(_: K.Type, batch b: Int, head h: Int, tile: Int) {
        let lanes = CPUTile.queries
        let keyTile = CPUTile.keys
        let (d, dv) = (shape.headDim, shape.valueDim)
        let kvHead = h / shape.groupSize
        let q0 = tile * lanes
        let queries = q0..<min(q0 + lanes, shape.queryLength)

        let queryT = Scratch(d * lanes)
        let scores = Scratch(keyTile * lanes)
        let accumulator = Scratch(dv * lanes)
        let stats = Scratch(3 * lanes)
        let (runningMax, runningSum, correction) = (stats.pointer, stats.pointer + lanes, stats.pointer + 2 * lanes)
        runningMax.update(repeating: -.infinity, count: lanes)
        let needsConversion = key.dtype != .float32
        let keyRows = Scratch(needsConversion ? keyTile * d : 0)
        let valueRows = Scratch(needsConversion ? keyTile * dv : 0)

        for q in queries {
            query.read(b, h, q, into: queryT.pointer + (q - q0), step: lanes, factor: queryFactor)
        }
        let blocks = mods.masking.keyBlocks(
            batch: b, head: h, queries: queries, keyCount: shape.keyLength, blockSize: keyTile)
        for block in blocks {
            let keys = block.range
            let (kPointer, kRow, kColumn) = key.operand(b, kvHead, rows: keys, scratch: keyRows.pointer, ld: d)
            K.gemm(GemmOperands(
                rows: keys.count, lanes: lanes, depth: d, a: kPointer, aRowStride: kRow, aDepthStride: kColumn,
                b: queryT.pointer, ldb: lanes, c: scores.pointer, ldc: lanes, accumulate: false))
            let tile = ScoreTile(values: scores.pointer, stride: lanes, batch: b, head: h, queries: queries, keys: keys)
            mods.scoreModifier?.modify(tile, derivative: nil, valueScale: .log2e, kernels: K.self)
            if block.needsMask { mods.masking.mask(tile) }
            K.softmaxStep(
                tile: scores.pointer, rows: keys.count, lanes: lanes, ld: lanes, runningMax: runningMax,
                runningSum: runningSum, correction: correction)
            K.scaleColumns(c: accumulator.pointer, rows: dv, lanes: lanes, ldc: lanes, factor: correction)
            let (vPointer, vRow, vColumn) = value.operand(b, kvHead, rows: keys, scratch: valueRows.pointer, ld: dv)
            // Oᵀ[dv][q] += Σ_k V[k][dv] · P[k][q]: V read transposed, its columns as GEMM rows.
            K.gemm(GemmOperands(
                rows: dv, lanes: lanes, depth: keys.count, a: vPointer, aRowStride: vColumn, aDepthStride: vRow,
                b: scores.pointer, ldb: lanes, c: accumulator.pointer, ldc: lanes, accumulate: true))
        }
        finish(batch: b, head: h, queries: queries, accumulator: accumulator.pointer, lanes: lanes,
               runningMax: runningMax, runningSum: runningSum, rowBuffer: scores.pointer)
    }

    /// Normalises the accumulated output, writes it and the natural-log log-sum-exp.
    private func finish(
        batch b: Int, head h: Int, queries: Range<Int>, accumulator: UnsafeMutablePointer<Float>, lanes: Int,
        runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
        rowBuffer: UnsafeMutablePointer<Float>
    ) {
        let lseRow = logSumExp + (b * shape.queryHeads + h) * shape.queryLength
        for q in queries {
            let i = q - queries.lowerBound
            let sum = runningSum[i]
            let inverse: Float = sum > 0 ? 1 / sum : 0
            for c in 0..<shape.valueDim { rowBuffer[c] = accumulator[c * lanes + i] * inverse }
            output.write(b, h, q, from: rowBuffer)
            lseRow[q] = sum > 0 ? runningMax[i] * Float.ln2 + logf(sum) : -.infinity
        }
    }
}

