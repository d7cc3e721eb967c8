/// The backward kernel for Hopper (sm_90a), FlashAttention-3's way: dK and dV, and dQ's Float32 sums, in one pass
/// on `wgmma` with TMA copies.
///
/// A CTA owns 128 keys of one key/value head (two consumer warpgroups of 64; K and V resident) and walks, for each
/// query head of the group in turn, the transposed block list's 64-query blocks, Q and dO streamed through
/// ``HopperPipeline`` (the block's LSE · log2 e and Delta, which ``DeltaKernel`` lays out per block, in a ring of
/// their own). Per block a warpgroup computes Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (K and V from registers at D, Dv ≤ 64),
/// forms Pᵀ and dSᵀ = Pᵀ (dPᵀ − Delta) ∂score′/∂score in registers, and adds Pᵀ dO to dV and dSᵀ Q to dK with the
/// A operands from registers and dO, Q read MN-major. It also writes its dSᵀ to shared memory, and in the next step each group
/// computes dQ = dS K for one 64-column block of D (at D ≤ 64 the groups take turns), both operands MN-major, and
/// puts it in a shared tile that a thread of the producer warpgroup adds to ``QueryGradientSums`` by a bulk
/// reduction, in the query block's turn order: dQ is deterministic. Each CTA writes its own dK and dV rows once.
///
/// The tensor maps of Q, K, V and dO come before ``MMAKeyValueGradientKernel``'s parameters, and dQ's sums, their
/// turn counters and the block list's turns after the gradients.
struct HopperGradientKernel: HopperBackwardKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    var stages = 3

    var keyBlock: Int { 64 * consumerGroups }

    var name: String {
        "fa_hopper_backward_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// K and V resident; dSᵀ (two buffers, so a group writes the next while the other still reads this one) and the
    /// dQ tiles as scratch; Q and dO streamed, and the block's LSE and Delta in a ring of their own (released once
    /// dS is formed; two stages fit at D = Dv = 128).
    var pipeline: HopperPipeline {
        HopperPipeline(
            resident: [HopperTile(pointer: "sK", map: "kMap", rows: keyBlock, columnBlocks: keyColumnBlocks),
                       HopperTile(pointer: "sV", map: "vMap", rows: keyBlock, columnBlocks: valueColumnBlocks)],
            scratch: [HopperScratch(pointer: "sdSt", bytes: 2 * keyBlock * 128),
                      HopperScratch(pointer: "sdQ", bytes: queryGradientTiles * keyColumnBlocks * QueryGradientSums.tileFloats * 4)],
            rings: [HopperRing(
                        tiles: [HopperTile(pointer: "sQ", map: "qMap", rows: queryBlock, columnBlocks: keyColumnBlocks),
                                HopperTile(pointer: "sdO", map: "dOMap", rows: queryBlock, columnBlocks: valueColumnBlocks)]),
                    blockRowsRing],
            stages: stages, consumerWarps: 4 * consumerGroups,
            handoffs: [HopperHandoff(pointer: "dQFull", arrivals: 128 * consumerGroups, count: queryGradientTiles),
                       HopperHandoff(pointer: "dQEmpty", arrivals: 1, count: queryGradientTiles)])
    }

    /// Always the turn order: two dQ warps already hide the turns, and zeroing the sums that any order needs cost
    /// up to 4% at S = 2048 (notes/hopper.md, twelfth pass).
    var ordersQueryGradient: Bool { true }

    /// Registers bound the head dims: dK and dV accumulators for 64 keys take 64 per thread each at D = Dv = 128.
    static func supports(headDim: Int, valueDim: Int) -> Bool { headDim <= 128 && valueDim <= 128 }

    /// Whether every tile is one 64-column block (D, Dv ≤ 64): registers and shared memory are then left over.
    private var narrowTiles: Bool { keyColumnBlocks == 1 && valueColumnBlocks == 1 }

    /// With ``narrowTiles`` registers hold this group's rows of K and V as the A operands of Sᵀ and dPᵀ (16 each), so
    /// those products read only Q and dO from shared memory; at D = 128 the 64 they would take are not there.
    var keysInRegisters: Bool { narrowTiles }

    /// Four stages fit with ``narrowTiles``, and give the short steps there more slack.
    var maxStages: Int { narrowTiles ? 4 : 3 }

    /// dQ tiles, used in turn (step v fills tile v % tiles, in its barriers' phase v / tiles), each with a dQ warp of
    /// its own: the consumers fill one while the other's warp still waits for its turn. Above D = 64 the second
    /// tile costs a stage (two instead of three) and still measured 3.5% faster at S = 2048, level at S ≥ 8192
    /// (D = 128; notes/hopper.md, ninth pass).
    var queryGradientTiles: Int { 2 }

    /// Step `v`'s dQ tile (a C expression of a step), its barriers, and the number of its phase on them.
    private func queryGradientTile(step v: String) -> (tile: String, full: String, empty: String, phase: String) {
        let tiles = queryGradientTiles
        return ("(sdQ + ((\(v)) % \(tiles)) * \(keyColumnBlocks * QueryGradientSums.tileFloats * 4))",
                "dQFull + (\(v)) % \(tiles)", "dQEmpty + (\(v)) % \(tiles)", "((\(v)) / \(tiles))")
    }

    var source: String {
        hopperPrelude([
            WGMMAShape(n: queryBlock, operands: keysInRegisters ? .registersKMajor : .kMajor),
            WGMMAShape(n: 64 * keyColumnBlocks, operands: .registers),
            WGMMAShape(n: 64 * valueColumnBlocks, operands: .registers), WGMMAShape(n: 64, operands: .mnMajor),
        ])
            + QueryGradientSums.indexFunction + QueryGradientSums.turnFunctions + (scoreMod?.tableGradientDefinition ?? "") + kernel
    }

    /// This group's K and V: the A operands in registers (``keysInRegisters``) or its rows of the shared tiles.
    private var residentKeys: String {
        keysInRegisters
            ? HopperHelpers.residentOperands("ka", tile: "sK", rows: "BK", columns: "PD") + "\n"
                + HopperHelpers.residentOperands("va", tile: "sV", rows: "BK", columns: "PDV")
            : "const unsigned char* const groupK = sK + g0 * 64 * 128;\n    const unsigned char* const groupV = sV + g0 * 64 * 128;"
    }

    /// Sᵀ = K Qᵀ and dPᵀ = V dOᵀ in a turn: K and V from registers (``keysInRegisters``) or K-major in shared memory.
    private var scoreProducts: String {
        let n = queryBlock
        return keysInRegisters
            ? HopperHelpers.productPair(
                HopperHelpers.registerKMajorProducts(n: n, accumulator: "st", operands: "ka", b: "sQ", bRows: "BQ", depth: "D"),
                HopperHelpers.registerKMajorProducts(n: n, accumulator: "dpt", operands: "va", b: "sdO", bRows: "BQ", depth: "DV"),
                accumulators: ("st", "dpt"))
            : HopperHelpers.productPair(
                HopperHelpers.kMajorProducts(n: n, accumulator: "st", a: "groupK", aRows: "BK", b: "sQ", bRows: "BQ", depth: "D"),
                HopperHelpers.kMajorProducts(n: n, accumulator: "dpt", a: "groupV", aRows: "BK", b: "sdO", bRows: "BQ", depth: "DV"),
                accumulators: ("st", "dpt"))
    }

    /// This group's 64 keys of dSt into the buffer `sdS` (rows by key, the layout of ``HopperHelpers``): the A
    /// operand of dQ = dS K, read MN-major; from the packed registers, 32 bits per store.
    private var storeScoreGradients: String {
        """
        #pragma unroll
                for (int kk = 0; kk < BQ / 16; ++kk) {
                    #pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        const int row = 16 * warp + lane / 4 + 8 * (a % 2), chunk = 2 * kk + a / 2;
                        *(fa_u32*)(sdS + \(HopperHelpers.operandOffset)) = dst[kk][a];
                    }
                }
                fa_fence_shared_for_async();
        """
    }

    /// Whether this group computes dQ of step `v` (which exists when `exists`), and which column block `c`: one
    /// each at D > 64; at D <= 64 the groups take turns. The accumulators are zeroed here, before the turn's
    /// `wgmma.fence`: the `wgmma` statements read them, so otherwise they would stay live through the elementwise
    /// work, where registers are short.
    private func queryGradientShare(step v: String, exists: String) -> String {
        """
        const bool sums = (\(exists)) && (QC == 2 || (\(v)) % 2 == g0);
                    const int c = QC == 2 ? g0 : 0;
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;
        """
    }

    /// dQ = dS K of step `v`: its column block `c` over the CTA's keys, both operands MN-major, from the dSt buffer
    /// both groups wrote in step `v`, as one commit group; issued (where this group sums that step) in a turn, after
    /// both groups' dSt of step `v` were stored in theirs.
    private func issueQueryGradient(step v: String) -> String {
        """
        if (sums) {
                        fa_wgmma_fence();  // in the branch, or ptxas fences (and serializes) the products itself
                        const unsigned char* const scores = sdSt + ((\(v)) % 2) * BK * 128;
                        #pragma unroll
                        for (int kk = 0; kk < BK / 16; ++kk)
                            fa_wgmma_ss_mn_64(dq, fa_wgmma_descriptor(scores + kk * 16 * 128, BK * 128, 1024),
                                              fa_wgmma_descriptor(sK + c * BK * 128 + kk * 16 * 128, BK * 128, 1024), kk);
                        fa_wgmma_commit();
                    }
        """
    }

    /// After the wait for step `v`'s dQ: its column block into step v's dQ tile once the dQ warp has handed the
    /// tile's previous use back, and every consumer thread's arrival on the tile's `dQFull`. Every consumer thread
    /// waits for that hand-back, whether or not it writes this tile (at D ≤ 64 the groups take turns): so a thread
    /// arrives for the tile's phase only once its previous phase has completed (an early arrival would count toward
    /// it, and the dQ warp would read a tile before the other group wrote it), and its parity waits follow the
    /// phases one by one (a thread two phases behind would take the older phase of the same parity for the one it
    /// waits for).
    private func storeQueryGradient(step v: String) -> String {
        let tile = queryGradientTile(step: v)
        return """
        fa_mbarrier_wait(\(tile.empty), ((\(tile.phase)) + 1) & 1);
                    if (sums) {
                        fa_wgmma_pin(dq);
                        float* const tile = (float*)\(tile.tile) + c * \(QueryGradientSums.tileFloats);
                        #pragma unroll
                        for (int r = 0; r < 2; ++r) {
                            const int row = 16 * (warp % 4) + lane / 4 + 8 * r;
                            #pragma unroll
                            for (int j = 0; j < 8; ++j)
                                *(float2*)(tile + fa_dq_sums_index(row, 8 * j + 2 * (lane % 4))) = make_float2(dq[j][2 * r], dq[j][2 * r + 1]);
                        }
                        fa_fence_shared_for_async();
                    }
                    fa_mbarrier_arrive(\(tile.full));
        """
    }

    private var kernel: String {
        let turns = WarpgroupTurns(groups: consumerGroups)
        let dQTile = queryGradientTile(step: "i")  // the dQ warp's step
        let pending = "fa_score_mod_table_pending pending = fa_score_mod_table_pending_start();"
        let consumerWalk = walk(afterHead: !computesTableGradients ? "" : """
                fa_score_mod_table_gradients_flush(table_gradients, pending);  // per-head entries change with h
                        pending = fa_score_mod_table_pending_start();
            """)
        return """
        extern "C" __global__ void __launch_bounds__(\(threads), 1)
        \(name)(
            \(signature.declaration)) {
            constexpr int D = \(headDim), DV = \(valueDim), PD = \(64 * keyColumnBlocks), PDV = \(64 * valueColumnBlocks);
            constexpr int BQ = \(queryBlock), BK = \(keyBlock), QC = PD / 64;
            \(pipeline.layout)
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
            \(ctaCoordinates)
            \(ProgrammaticLaunch.launchDependents)  // the dQ finish may take SMs this grid leaves idle

            if (warp >= \(4 * consumerGroups)) {  // the producer warpgroup
                \(pipeline.producer(residentAt: ("k0", "hkv"), streamedAt: ("q0", "h"), walk: walk(), registers: producerRegisters))
                \(queryGradientWarp(tile: dQTile.tile, full: dQTile.full, phase: dQTile.phase, tiles: queryGradientTiles,
                                    handBack: "fa_mbarrier_arrive(\(dQTile.empty))"))
            } else {
            asm volatile("setmaxnreg.inc.sync.aligned.u32 \(consumerRegisters);");
            // Consumer warpgroup `g0`; this thread holds keys lane / 4 and lane / 4 + 8 of its warp's 16.
            const int g0 = warp / 4;
            float dk[PD / 8][4], dv[PDV / 8][4], dq[8][4];
            #pragma unroll
            for (int j = 0; j < PD / 8; ++j) dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = 0.0f;
            #pragma unroll
            for (int j = 0; j < PDV / 8; ++j) dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;
            \(computesTableGradients ? pending : "")
            fa_mbarrier_wait(residentLoaded, 0);
            \(residentKeys)
            \(turns.start(group: "g0"))

            \(consumerWalk.open)
            \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                \(stepOperands)

                \(keysInRegisters ? "// St = K Qt and dPt = V dOt, K and V from registers, Qt and dOt K-major in shared memory."
                    : "// St = K Qt and dPt = V dOt, both operands K-major in shared memory.")
                float st[BQ / 8][4], dpt[BQ / 8][4];
                \(scoreProducts)

                // Pt and dSt, rounded to 16 bits as the A operands of Pt dO and dSt Q; dSt also to shared memory.
                \(scoreGradients(tiles: "BQ / 8", query: "q0 + 8 * j + 2 * (lane % 4) + e % 2",
                                 key: "k0 + 16 * warp + lane / 4 + 8 * (e / 2)"))
                fa_u32 pt[BQ / 16][4], dst[BQ / 16][4];
                fa_pack_operands(st, pt);
                fa_pack_operands(dpt, dst);
                // Second turn: dSt of this step to shared memory (in the turn, so the other group has waited for its
                // dQ of step i − 2, which read this buffer), dV += Pt dO and dK += dSt Q (dO and Q read MN-major,
                // 64-column blocks BQ * 128 bytes apart), and dQ of step i − 1, whose dSt both groups stored in
                // their turns before this one.
                \(queryGradientShare(step: "i - 1", exists: "i > 0"))
                awaitTurn();
                unsigned char* const sdS = sdSt + (i % 2) * BK * 128;
                \(storeScoreGradients)
                fa_wgmma_fence();
                #pragma unroll
                for (int kk = 0; kk < BQ / 16; ++kk) {
                    fa_wgmma_rs_\(64 * valueColumnBlocks)(dv, pt[kk], fa_wgmma_descriptor(sdO + kk * 16 * 128, BQ * 128, 1024));
                    fa_wgmma_rs_\(64 * keyColumnBlocks)(dk, dst[kk], fa_wgmma_descriptor(sQ + kk * 16 * 128, BQ * 128, 1024));
                }
                fa_wgmma_commit();
                \(issueQueryGradient(step: "i - 1"))
                passTurn();
                fa_wgmma_wait<0>();
                fa_wgmma_pin(dv);
                fa_wgmma_pin(dk);
                \(pipeline.release(ring: tiles, step: "i"))
                if (i > 0) {
                    \(storeQueryGradient(step: "i - 1"))
                }
            \(consumerWalk.close)
            if (i > 0) {  // the last step's dQ, in one more turn
                \(queryGradientShare(step: "i - 1", exists: "true"))
                awaitTurn();
                \(issueQueryGradient(step: "i - 1"))
                passTurn();
                fa_wgmma_wait<0>();
                \(storeQueryGradient(step: "i - 1"))
            }
            \(turns.finish(group: "g0"))

            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int key = k0 + 16 * warp + lane / 4 + 8 * r;
                if (key >= Skv) continue;
                const long long row = ((long long)b * Hkv + hkv) * Skv + key;
                \(HopperHelpers.storeRow("dk", r: "r", columns: "D", times: "scale", at: "dK + row * D"))
                \(HopperHelpers.storeRow("dv", r: "r", columns: "DV", times: "1.0f", at: "dV + row * DV"))
            }
            }
        }

        """
    }
}
