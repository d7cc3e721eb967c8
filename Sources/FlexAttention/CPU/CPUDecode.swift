import FlexAttentionSIMD

#if canImport(Glibc)
import Glibc
#endif

/// Decoding on the CPU.
///
/// One work item is one (sequence, KV heads, split of the cache): one KV head for a contiguous cache, every KV head
/// for a paged one, whose pages interleave the heads' rows, so that an item reads its pages from end to end. The
/// `group × Sq` queries of each KV head's query heads are packed as rows of one tile, so every key and value row is
/// read once for the whole group. With so
/// few query rows the loops are shaped for them: scores are dot products of key rows with query rows
/// (``TileKernels/dotRows(_:)``, no padded lanes), the score tile stays key-major with the rows as lanes for the
/// mods and the softmax, and the output accumulates row-major from a GEMM whose B operand is V read in place. The split's cached tokens stream through it in blocks: the mask, when there is one, is evaluated first,
/// and a block it removes entirely is never read. Each split leaves a partial output and log-sum-exp; the splits of
/// a sequence, and its sinks, are merged in a fixed order (``LogSumExpMerge``), so the bits do not depend on the
/// thread count. The split count depends on the shapes only.
struct CPUDecode {
    let problem: DecodeProblem
    let query: Tensor
    let cache: KVCache
    let outputDType: DType

    /// Splits per (sequence, KV head): enough items for every core of a large machine, none shorter than
    /// ``minimumSplitKeys``.
    static func splitCount(batch: Int, headChunks: Int, capacity: Int) -> Int {
        let wanted = (targetItems + batch * headChunks - 1) / (batch * headChunks)
        return max(1, min(wanted, capacity / minimumSplitKeys))
    }
    private static let targetItems = 64
    private static let minimumSplitKeys = 512

    func run() throws -> AttentionOutput {
        let p = problem
        let kvHeadsPerItem = cache.pageTable == nil ? 1 : p.kvHeads
        let headChunks = p.kvHeads / kvHeadsPerItem
        let rows = kvHeadsPerItem * p.groupSize * p.queryLength
        let lanes = paddedToLanes(rows)
        let splits = Self.splitCount(batch: p.batch, headChunks: headChunks, capacity: p.capacity)
        let keysPerSplit = (p.capacity + splits - 1) / splits
        let splitKeys = (keysPerSplit + CPUTile.keys - 1) / CPUTile.keys * CPUTile.keys
        let items = p.batch * headChunks * splits
        let keys = CPUTile.keys
        try CPUWorkingMemory.require(
            perThread: rows * (p.headDim + paddedToLanes(p.valueDim)) + (2 * keys + 3) * lanes
                + keys * (p.headDim + paddedToLanes(p.valueDim)),
            shared: items * rows * (p.valueDim + 1))
        let partialOutputs = try Tensor(zeros: [items, rows, p.valueDim])
        let partialLogSumExps = try Tensor(zeros: [items, rows])
        let mods = try DecodeMods(problem: p)
        let plan = DecodeItemPlan(
            problem: p, mods: mods, kvHeadsPerItem: kvHeadsPerItem, lanes: lanes, splitKeys: splitKeys, splits: splits,
            query: StridedRows(query),
            keys: CacheRows(cache.keys, pageTable: cache.pageTable),
            values: CacheRows(cache.values, pageTable: cache.pageTable),
            partialOutputs: partialOutputs.storage.baseAddress.assumingMemoryBound(to: Float.self),
            partialLogSumExps: partialLogSumExps.storage.baseAddress.assumingMemoryBound(to: Float.self))
        InstructionSet.current.withKernels { kernels in
            parallelFor(items) { plan.run(kernels, item: $0) }
        }
        return try merge(
            partialOutputs: partialOutputs.floats(), partialLogSumExps: partialLogSumExps.floats(), rows: rows,
            splits: splits)
    }

    /// O and LSE of every row from its splits' partial results and its head's sink, merged in split order.
    private func merge(
        partialOutputs: [Float], partialLogSumExps: [Float], rows: Int, splits: Int
    ) throws -> AttentionOutput {
        let p = problem
        let output = try Tensor(zeros: [p.batch, p.queryHeads, p.queryLength, p.valueDim], dtype: outputDType)
        let logSumExp = try Tensor(zeros: [p.batch, p.queryHeads, p.queryLength])
        let outputRows = StridedRows(output)
        let lse = logSumExp.storage.baseAddress.assumingMemoryBound(to: Float.self)
        var merged = [Float](repeating: 0, count: p.valueDim)
        let headsPerItem = rows / p.queryLength
        for b in 0..<p.batch {
            for headChunk in 0..<p.queryHeads / headsPerItem {
                let firstItem = (b * p.queryHeads / headsPerItem + headChunk) * splits
                for r in 0..<rows {
                    let head = headChunk * headsPerItem + r / p.queryLength
                    let i = r % p.queryLength
                    var parts = (0..<splits).map { Double(partialLogSumExps[(firstItem + $0) * rows + r]) }
                    if let sinks = p.sinks { parts.append(Double(sinks[head])) }  // a part with no value: O = 0
                    let merge = LogSumExpMerge(parts)
                    for c in 0..<p.valueDim {
                        var sum = 0.0
                        for s in 0..<splits where merge.weights[s] != 0 {
                            sum += merge.weights[s] * Double(partialOutputs[((firstItem + s) * rows + r) * p.valueDim + c])
                        }
                        merged[c] = merge.logSumExp.isNaN ? .nan : Float(sum)
                    }
                    outputRows.write(b, head, i, from: merged)
                    lse[(b * p.queryHeads + head) * p.queryLength + i] = Float(merge.logSumExp)
                }
            }
        }
        return AttentionOutput(output: output, logSumExp: logSumExp)
    }
}

/// The decode problem's mask and score mod, compiled for tiles once per call.
private struct DecodeMods: Sendable {
    let mask: DecodeMasking?
    let scoreModifier: ScoreModTileEvaluator?

    init(problem: DecodeProblem) throws {
        // Every tile carries its sequence's lengths; the capacity only sizes the evaluators.
        mask = try problem.mask.map { try DecodeMasking($0, capacity: problem.capacity) }
        scoreModifier = try problem.scoreMod.map {
            try ScoreModTileEvaluator(
                $0, queryLength: problem.capacity, keyLength: problem.capacity, includesGradients: false)
        }
    }
}

/// Everything one decode work item reads and writes, as raw views that may cross threads.
private struct DecodeItemPlan: @unchecked Sendable {
    let problem: DecodeProblem
    let mods: DecodeMods
    let kvHeadsPerItem: Int
    /// Packed query rows, padded to the tile kernels' lane quantum.
    let lanes: Int
    /// Cached positions per split, a multiple of the block size.
    let splitKeys: Int
    let splits: Int
    let query: StridedRows
    let keys: CacheRows
    let values: CacheRows
    /// `[items, rows, Dv]` normalised outputs of each split.
    let partialOutputs: UnsafeMutablePointer<Float>
    /// `[items, rows]` log-sum-exps of each split (−∞ where it keeps nothing).
    let partialLogSumExps: UnsafeMutablePointer<Float>

    func run<K: TileKernels>(_: K.Type, item: Int) {
        let p = problem
        let headChunks = p.kvHeads / kvHeadsPerItem
        let (b, headChunk, split) = (item / (headChunks * splits), item / splits % headChunks, item % splits)
        let kvHeads = headChunk * kvHeadsPerItem..<(headChunk + 1) * kvHeadsPerItem
        let length = p.lengths[b]
        let positions = min(split * splitKeys, length)..<min((split + 1) * splitKeys, length)
        let groupRows = p.groupSize * p.queryLength
        let rows = kvHeadsPerItem * groupRows
        let (d, dv, blockKeys) = (p.headDim, p.valueDim, CPUTile.keys)
        let dvPadded = paddedToLanes(dv)
        let queryRows = Scratch(rows * d)
        let scores = Scratch(blockKeys * lanes)
        let bias = Scratch(mods.mask == nil ? 0 : blockKeys * lanes)
        let accumulator = Scratch(rows * dvPadded)
        let stats = Scratch(3 * lanes)
        let (runningMax, runningSum, correction) = (stats.pointer, stats.pointer + lanes, stats.pointer + 2 * lanes)
        runningMax.update(repeating: -.infinity, count: lanes)
        let keyRows = Scratch(blockKeys * d)
        let valueRows = Scratch(blockKeys * dvPadded)

        // Row r is query r % Sq of query head firstHead + r / Sq: the item's heads are consecutive.
        let firstHead = kvHeads.lowerBound * p.groupSize
        let factor = mods.scoreModifier == nil ? p.scale * .log2e : p.scale
        for r in 0..<rows {
            query.read(b, firstHead + r / p.queryLength, r % p.queryLength, into: queryRows.pointer + r * d, factor: factor)
        }
        let queryPositions = p.queryPosition(sequence: b, query: 0)..<length
        let heads = firstHead..<firstHead + rows / p.queryLength
        let states = mods.mask?.blockStates(
            sequence: b, length: length, heads: heads, queries: queryPositions, keys: positions, blockSize: blockKeys)
        for (index, blockStart) in stride(from: positions.lowerBound, to: positions.upperBound, by: blockKeys).enumerated() {
            let block = blockStart..<min(blockStart + blockKeys, positions.upperBound)
            let state = states?[index] ?? .kept
            if state == .removed { continue }
            if state == .partial {
                bias.pointer.update(repeating: 0, count: block.count * lanes)
                forEachHeadTile(bias.pointer, b: b, heads: heads, queries: queryPositions, keys: block) {
                    mods.mask?.evaluator.mask($0)
                }
            }
            for (j, kvHead) in kvHeads.enumerated() {
                let (kPointer, kRow) = keys.operand(
                    sequence: b, head: kvHead, positions: block, scratch: keyRows.pointer, ld: d)
                K.dotRows(DotRowsOperands(
                    keys: block.count, rows: groupRows, depth: d, a: kPointer, aRowStride: kRow,
                    q: queryRows.pointer + j * groupRows * d, ldq: d, c: scores.pointer + j * groupRows, ldc: lanes))
            }
            if let modifier = mods.scoreModifier {
                forEachHeadTile(scores.pointer, b: b, heads: heads, queries: queryPositions, keys: block) {
                    modifier.modify($0, derivative: nil, valueScale: .log2e, kernels: K.self)
                }
            }
            if state == .partial {
                // The mask as 0 or −∞, added after the score mod: a mod never sees a masked score as −∞.
                for e in 0..<block.count * lanes { scores.pointer[e] += bias.pointer[e] }
            }
            K.softmaxStep(
                tile: scores.pointer, rows: block.count, lanes: lanes, ld: lanes, runningMax: runningMax,
                runningSum: runningSum, correction: correction)
            for r in 0..<rows {
                let row = accumulator.pointer + r * dvPadded
                for c in 0..<dvPadded { row[c] *= correction[r] }
            }
            for (j, kvHead) in kvHeads.enumerated() {
                let (vPointer, vRow) = values.operand(
                    sequence: b, head: kvHead, positions: block, scratch: valueRows.pointer, ld: dvPadded,
                    paddedColumns: dvPadded)
                // O[r][dv] += Σ_k P[k][r] · V[k][dv]: P read transposed from the key-major tile.
                K.gemm(GemmOperands(
                    rows: groupRows, lanes: dvPadded, depth: block.count, a: scores.pointer + j * groupRows,
                    aRowStride: 1, aDepthStride: lanes, b: vPointer, ldb: vRow,
                    c: accumulator.pointer + j * groupRows * dvPadded, ldc: dvPadded, accumulate: true))
            }
        }
        let outputs = partialOutputs + item * rows * dv
        let logSumExps = partialLogSumExps + item * rows
        for r in 0..<rows {
            let sum = runningSum[r]
            let inverse: Float = sum > 0 ? 1 / sum : 0
            for c in 0..<dv { outputs[r * dv + c] = accumulator.pointer[r * dvPadded + c] * inverse }
            logSumExps[r] = sum > 0 ? runningMax[r] * Float.ln2 + logf(sum) : -.infinity
        }
    }

    /// Calls `body` with the tile of each query head of `heads` (consecutive rows of `Sq` lanes of the key-major
    /// `tile`), at the sequence's absolute positions and with its own lengths.
    private func forEachHeadTile(
        _ tile: UnsafeMutablePointer<Float>, b: Int, heads: Range<Int>, queries: Range<Int>, keys: Range<Int>,
        _ body: (ScoreTile) -> Void
    ) {
        let length = problem.lengths[b]
        for (g, head) in heads.enumerated() {
            body(ScoreTile(
                values: tile + g * problem.queryLength, stride: lanes, batch: b, head: head, queries: queries,
                keys: keys, sequenceLengths: SequenceLengths(query: length, key: length)))
        }
    }
}
