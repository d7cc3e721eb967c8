/// The Hopper backward kernels (``HopperGradientKernel`` up to D = Dv = 128, ``HopperWideGradientKernel`` above):
/// a CTA per key block and key/value head walks the transposed block list's 64-query blocks for each query head of
/// its group, computes dK and dV, and adds dQ to ``QueryGradientSums`` in the query block's turn. The parts they
/// share: the walk, the loop that forms Pᵀ and dSᵀ, and the dQ warp.
protocol HopperBackwardKernel: HopperAttentionKernel, GradientAttentionKernel {
    /// Whether dQ's additions keep each query block's turn order (deterministic), or go in whatever order the CTAs
    /// reach them (``AttentionOptions/deterministicGradients`` false): then no CTA waits for another, the sums start
    /// zeroed, and the launch order puts each head's longest walks first. Only ``HopperWideGradientKernel`` offers
    /// the second.
    var ordersQueryGradient: Bool { get }
}

extension HopperBackwardKernel {
    var gradientNames: [String] { ["dK", "dV"] }
    /// What ends the kernel's name when dQ's additions go in any order.
    var orderSuffix: String { ordersQueryGradient ? "" : "_anyorder" }
    var sumsQueryGradient: Bool { true }
    /// The blocks ``DeltaKernel`` lays out LSE and Delta in, and ``QueryGradientSums``' tiles.
    var queryBlock: Int { DeltaKernel.rowBlock }
    var readsBlockRows: Bool { true }
    var readsTensorMaps: Bool { true }

    /// The pipeline's rings: Q and dO (`tiles`), then the block's LSE and Delta (`rows`).
    var tiles: Int { 0 }
    var rows: Int { 1 }

    /// The block's LSE and Delta (``DeltaKernel``'s layout), bulk-copied into a ring of their own.
    var blockRowsRing: HopperRing {
        HopperRing(tiles: [], copies: [HopperBulkCopy(
            pointer: "sRows", source: "blockRows + (((long long)b * Hq + h) * queryBlocks + q0 / BQ) * 2 * BQ",
            bytes: 2 * queryBlock * 4)])
    }

    /// The CTA's key block, batch, key/value head and group, its warp and lane (the statements after the
    /// shared-memory layout, at the kernel's first level).
    ///
    /// CTAs are numbered in launch order (x fastest), which is the order the hardware dispatches them in, and a
    /// number names a band of `bandHeads` heads
    /// (``headBand(walk:turnSteps:heads:headBytes:multiprocessors:l2Bytes:)``), then a level of key blocks, then a
    /// head of the band. A band's CTAs run together: the Q, dO and dQ sums of its heads stay in L2.
    ///
    /// With ``ordersQueryGradient`` the levels go from the highest key block down. The highest key blocks add to a
    /// query block first, so a CTA only ever waits for the turn of a CTA that started before it, and the band spaces
    /// a key block's start behind the one it waits for by `bandHeads` launches, so that one has usually added by
    /// then. Without turns the levels go from key block 0 up: under a causal mask the longest walks start first
    /// instead of last.
    var ctaCoordinates: String {
        let level = ordersQueryGradient ? "keyBlocks - 1 - inBand / width" : "inBand / width"
        return [
            "const int keyBlocks = (Skv + BK - 1) / BK, queryBlocks = (Sq + BQ - 1) / BQ;",
            "const long long cta = (long long)blockIdx.y * gridDim.x + blockIdx.x, bandCTAs = (long long)bandHeads * keyBlocks;",
            "const int firstHead = (int)(cta / bandCTAs) * bandHeads, width = min(bandHeads, (int)gridDim.y - firstHead);",
            "const int inBand = (int)(cta % bandCTAs), keyBlock = \(level), head = firstHead + inBand % width;",
            "const int b = head / Hkv, hkv = head % Hkv, group = Hq / Hkv;",
            "const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;",
            "const int k0 = keyBlock * BK;",
        ].joined(separator: "\n    ")
    }

    /// Heads per band of the launch order (``ctaCoordinates``): wide enough that a key block starts about
    /// `turnSteps` steps' time after the key block above it in its head (a multiprocessor frees up every walk /
    /// `multiprocessors` steps, one CTA each), and narrow enough that the Q, dO and dQ sums a band shares,
    /// `headBytes` per head, fit in four fifths of the L2 (`l2Bytes`).
    ///
    /// Without bands a head's key blocks start together and each waits for a whole turn (a bulk add's round trip,
    /// longer than a step at D = 64) for the one above it, on every query block. A turn lasts about as long whatever
    /// the head dim while a step's time grows with it: measured, 8 steps of spacing paid best at D ≤ 64 and 2 above
    /// (4 and 8 were level or slower there); bands beyond the L2 cost up to 50% (notes/hopper.md, eighth pass).
    /// Bands of one are the plain order.
    static func headBand(walk: Int, turnSteps: Int, heads: Int, headBytes: Int, multiprocessors: Int, l2Bytes: Int) -> Int {
        let spacing = (turnSteps * multiprocessors + max(walk, 1) - 1) / max(walk, 1)
        let fitting = 4 * l2Bytes / 5 / max(headBytes, 1)
        return max(1, min(spacing, fitting, heads))
    }

    /// ``headBand(walk:turnSteps:heads:headBytes:multiprocessors:l2Bytes:)`` for `shape`: a key/value head's CTAs
    /// walk its group's query heads, all reading Q and dO and adding to dQ's sums (each reads its own K and V once).
    static func headBand(for shape: AttentionShape, multiprocessors: Int, l2Bytes: Int) -> Int {
        let rowBytes = (shape.headDim + shape.valueDim) * shape.dtype.byteSize
            + 4 * 64 * QueryGradientSums.columnBlocks(headDim: shape.headDim)
        return headBand(
            walk: shape.groupSize * QueryGradientSums.queryBlocks(queryLength: shape.queryLength),
            turnSteps: turnSteps(headDim: shape.headDim, valueDim: shape.valueDim),
            heads: shape.batch * shape.keyValueHeads, headBytes: shape.groupSize * shape.queryLength * rowBytes,
            multiprocessors: multiprocessors, l2Bytes: l2Bytes)
    }

    /// Steps of spacing ``headBand(walk:turnSteps:heads:headBytes:multiprocessors:l2Bytes:)`` asks for at head dims
    /// `headDim`, `valueDim`.
    static func turnSteps(headDim: Int, valueDim: Int) -> Int {
        max(headDim, valueDim) <= 64 ? 8 : 2
    }

    /// The step's Q and dO (`sQ`, `sdO`) and its block's LSE · log2 e and Delta (`lse2`, `delta`), waited for
    /// (statements in the consumers' walk).
    var stepOperands: String {
        [
            "const unsigned char* const sQ = \(pipeline.pointer(pipeline.rings[tiles].tiles[0], stage: "i % \(stages)"));",
            "const unsigned char* const sdO = \(pipeline.pointer(pipeline.rings[tiles].tiles[1], stage: "i % \(stages)"));",
            "// The block's LSE in base 2 (+inf past the end or for rows that keep nothing) and Delta.",
            "const float* const lse2 = (const float*)\(pipeline.pointer(pipeline.rings[rows].copies[0], stage: "i % \(stages)"));",
            "const float* const delta = lse2 + BQ;",
            pipeline.waitFull(ring: tiles, step: "i"),
            pipeline.waitFull(ring: rows, step: "i"),
        ].joined(separator: "\n        ")
    }

    /// The query heads of the group in order, each through its line of the transposed list; `i` counts steps
    /// across heads, `q0` is the block's first query; `afterHead` ends each head's walk.
    func walk(afterHead: String = "") -> (open: String, close: String) {
        ("""
        int i = 0;
                for (int g = 0; g < group; ++g) {
                    const int h = hkv * group + g;
                    const int line = (b * maskBatchStride + h * maskHeadStride) * keyBlocks + keyBlock;
                    const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, queryBlocks);
                    const int begin = range.begin, end = range.end;
                    for (int step = begin; step < end; ++step, ++i) {
                        const int entry = fa_block_entry(blockList, step), q0 = (entry >> 1) * BQ;
                        const bool partial = (entry & 1) != 0;
        """, "}\n\(afterHead)}")
    }

    /// The loop forming Pt and dSt in place of St and dPt (`tiles` accumulator tiles of 8 queries, the first at
    /// `query`, keys at `key`, as C expressions of `j` and `e`), with or without the per-score bounds and mask checks;
    /// without a score mod, in ``BackwardKernelSource/plainScoreGradient(score:gradient:lse2:delta:mask:checked:indent:)``'s
    /// fewer instructions.
    func scoreLoop(checked: Bool, tiles: String, query: String, key: String) -> String {
        let body: String
        if scoreMod == nil {
            body = BackwardKernelSource.plainScoreGradient(
                score: "st[j][e]", gradient: "dpt[j][e]", lse2: "lse2[query - q0]", delta: "delta[query - q0]", mask: mask,
                checked: checked, indent: 24)
        } else {
            let tableGradients = !computesTableGradients ? "" : """
                                    if (keep) fa_score_mod_table_gradients(x, b, h, query, key, Sq, Skv, score_mod, upstream, table_gradients, pending);
                """
            body = """
                \(BackwardKernelSource.probability(score: "st[j][e]", lse2: "lse2[query - q0]", mask: mask, scoreMod: scoreMod, checked: checked, indent: 24))
                                const float upstream = p == 0.0f ? 0.0f : p * (dpt[j][e] - delta[query - q0]);
                    \(tableGradients)
                                st[j][e] = p;
                                dpt[j][e] = upstream == 0.0f ? 0.0f : upstream * slope;  // slope may be inf where p = 0
                """
        }
        return """
                #pragma unroll
                for (int j = 0; j < \(tiles); ++j) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int query = \(query), key = \(key);
                        \(body)
                    }
                }
        """
    }

    /// Pt and dSt formed in place of St and dPt (``scoreLoop(checked:tiles:query:key:)``, with the checks only where
    /// the block is partial or runs past the keys), then the block's LSE and Delta handed back.
    func scoreGradients(tiles: String, query: String, key: String) -> String {
        HopperHelpers.checkedOrNot("partial || k0 + BK > Skv") {
            scoreLoop(checked: $0, tiles: tiles, query: query, key: key)
        } + "\n        " + pipeline.release(ring: rows, step: "i")
    }

    /// The dQ warp (a thread of the producer warpgroup): per step `i`, once the consumers have filled the dQ tile at
    /// `tile` (the barrier `full` completing phase `phase`, expressions of `i`), waits for the query block's turn,
    /// stores the tile into its sums (the first turn) or adds it, runs `handBack` as soon as the tile has been read,
    /// and passes the turn on once the sums are written. Without ``ordersQueryGradient`` it adds at once to sums
    /// that start zeroed, and the turn counter only counts the additions (the dQ finish waits for all of them).
    ///
    /// With `tiles` dQ tiles used in turn (tile `i % tiles`, each with barriers of its own), a warp per tile does
    /// this for its tile's steps, so one step's turn wait and addition overlap the previous step's wait for its
    /// writes: a turn costs a bulk add's round trip, which at D = 64 is longer than a step. The steps add to
    /// different query blocks, so their order does not matter; each tile keeps the one-warp protocol.
    func queryGradientWarp(tile: String, full: String = "dQFull", phase: String = "i", tiles: Int = 1, handBack: String) -> String {
        let walk = walk()
        let first = 4 * consumerGroups + 1
        let bytes = "QC * \(QueryGradientSums.tileFloats * 4)"
        let addition = !ordersQueryGradient ? "fa_bulk_reduce_add(sums, \(tile), \(bytes));" : """
            // Without a list every key block adds to every query block, the highest first.
                            const int turn = blockTurns ? blockTurns[step] : keyBlocks - 1 - keyBlock;
                            fa_await_turn(dQturns + block, turn);
                            if (turn == 0) fa_bulk_store(sums, \(tile), \(bytes));
                            else fa_bulk_reduce_add(sums, \(tile), \(bytes));
            """
        let (branch, ownStep) = tiles == 1
            ? ("if (warp == \(first) && lane == 0) {  // the dQ warp", "")
            : ("if (warp >= \(first) && warp < \(first + tiles) && lane == 0) {  // the dQ warps, one per tile",
               "if (i % \(tiles) != warp - \(first)) continue;  // the other tile's step\n                ")
        return """
        \(branch)
                    \(walk.open)
                        \(ownStep)fa_mbarrier_wait(\(full), \(phase) & 1);
                        const long long block = ((long long)b * Hq + h) * queryBlocks + q0 / BQ;
                        float* const sums = dQsums + block * QC * \(QueryGradientSums.tileFloats);
                        \(addition)
                        fa_bulk_commit();
                        fa_bulk_wait_read();
                        \(handBack);
                        fa_bulk_wait();
                        fa_pass_turn(dQturns + block);
                    \(walk.close)
                }
        """
    }
}
