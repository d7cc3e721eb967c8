/// The Hopper backward for head dims above 128 (up to 256): dK, dV and dQ's Float32 sums in one pass, like
/// ``HopperGradientKernel``, with the work split by columns instead of by keys, since dK and dV for 64 keys alone
/// would take every register a thread has at D = Dv = 256.
///
/// A CTA owns 64 keys (K and V resident) and walks 64-query blocks, Q and dO streamed through two stages. Per block:
/// - each consumer warpgroup computes Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for its 32 queries and forms Pᵀ and dSᵀ, which it
///   writes to shared memory (rows by key, 16 bits);
/// - once both groups have written theirs, group g adds Pᵀ dO and dSᵀ Q to its half of dV's and dK's columns and
///   computes its half of dQ = dS K, every operand from shared memory;
/// - once both groups have read the stage, they write dQ over it as ``QueryGradientSums``' tile, and the dQ warp
///   adds the tile to the sums in the query block's turn and hands the stage back to the producer.
/// The dQ tile (64 × 256 floats) thus needs no room of its own, and two stages fit at D = Dv = 256.
///
/// D and Dv are padded to 128 or 256 (halves of 64-column blocks per group); the tile must fit in a stage, so the
/// padded D is at most the padded Dv. Parameters as ``HopperGradientKernel``'s.
struct HopperWideGradientKernel: HopperBackwardKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    /// The turn order (deterministic), or any order (``AttentionOptions/deterministicGradients`` false): the
    /// turns bound this kernel, whose one dQ warp hands each stage back only after its addition (9–11% faster).
    var ordersQueryGradient = true
    var stages = 2
    var maxStages: Int { 2 }

    var keyBlock: Int { 64 }

    var name: String {
        "fa_hopper_wide_backward_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)\(orderSuffix)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// D and Dv padded to what the two groups split: 128 or 256.
    static func padded(_ dim: Int) -> Int { (dim + 127) / 128 * 128 }
    private var paddedHeadDim: Int { Self.padded(headDim) }
    private var paddedValueDim: Int { Self.padded(valueDim) }

    /// Head dims this kernel takes where ``HopperGradientKernel`` does not: up to 256, D's dQ tile within a stage.
    static func supports(headDim: Int, valueDim: Int) -> Bool {
        max(headDim, valueDim) > 128 && max(headDim, valueDim) <= 256 && padded(headDim) <= padded(valueDim)
    }

    /// K and V resident; Pᵀ and dSᵀ as scratch; Q and dO streamed (the stage handed back by the dQ warp, once the
    /// dQ tile written over it has been read), and the block's LSE and Delta in a ring of their own.
    var pipeline: HopperPipeline {
        HopperPipeline(
            resident: [HopperTile(pointer: "sK", map: "kMap", rows: keyBlock, columnBlocks: paddedHeadDim / 64),
                       HopperTile(pointer: "sV", map: "vMap", rows: keyBlock, columnBlocks: paddedValueDim / 64)],
            scratch: [HopperScratch(pointer: "sPt", bytes: keyBlock * 128), HopperScratch(pointer: "sdSt", bytes: keyBlock * 128)],
            rings: [HopperRing(
                        tiles: [HopperTile(pointer: "sQ", map: "qMap", rows: queryBlock, columnBlocks: paddedHeadDim / 64),
                                HopperTile(pointer: "sdO", map: "dOMap", rows: queryBlock, columnBlocks: paddedValueDim / 64)],
                        handBackArrivals: 1),
                    blockRowsRing],
            stages: stages, consumerWarps: 4 * consumerGroups,
            handoffs: [HopperHandoff(pointer: "dQFull", arrivals: 128 * consumerGroups)])
    }

    var source: String {
        hopperPrelude([
            WGMMAShape(n: queryBlock / 2, operands: .kMajor), WGMMAShape(n: paddedHeadDim / 2, operands: .bMNMajor),
            WGMMAShape(n: paddedValueDim / 2, operands: .bMNMajor), WGMMAShape(n: paddedHeadDim / 2, operands: .mnMajor),
        ])
            + QueryGradientSums.indexFunction + QueryGradientSums.turnFunctions + (scoreMod?.tableGradientDefinition ?? "") + kernel
    }

    /// This group's 32 queries of Pt and dSt (packed A operands) into `sPt` and `sdSt`: rows by key, the group's
    /// queries at 16-byte chunks 4g..4g + 3 of each 128-byte row (``HopperHelpers``' layout), 32 bits per store.
    private var storeScores: String {
        """
        #pragma unroll
                for (int kk = 0; kk < BQ / 32; ++kk) {
                    #pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        const int row = 16 * w + lane / 4 + 8 * (a % 2), chunk = 4 * g0 + 2 * kk + a / 2;
                        const int offset = \(HopperHelpers.operandOffset);
                        *(fa_u32*)(sPt + offset) = pt[kk][a];
                        *(fa_u32*)(sdSt + offset) = dst[kk][a];
                    }
                }
                fa_fence_shared_for_async();
        """
    }

    /// dV += Pt dO and dK += dSt Q on this group's columns (A K-major, B MN-major: 64-column blocks BQ · 128 bytes
    /// apart), and dQ = dS K on this group's columns of D (both MN-major), one commit group.
    private var products: String {
        """
        fa_wgmma_fence();
                #pragma unroll
                for (int kk = 0; kk < BQ / 16; ++kk) {
                    fa_wgmma_ss_kmn_\(paddedValueDim / 2)(dv, fa_wgmma_descriptor(sPt + kk * 32, 16, 1024),
                        fa_wgmma_descriptor(sdO + g0 * (HDV / 64) * BQ * 128 + kk * 16 * 128, BQ * 128, 1024), 1);
                    fa_wgmma_ss_kmn_\(paddedHeadDim / 2)(dk, fa_wgmma_descriptor(sdSt + kk * 32, 16, 1024),
                        fa_wgmma_descriptor(sQ + g0 * (HD / 64) * BQ * 128 + kk * 16 * 128, BQ * 128, 1024), 1);
                }
                #pragma unroll
                for (int kk = 0; kk < BK / 16; ++kk)
                    fa_wgmma_ss_mn_\(paddedHeadDim / 2)(dq, fa_wgmma_descriptor(sdSt + kk * 16 * 128, BK * 128, 1024),
                        fa_wgmma_descriptor(sK + g0 * (HD / 64) * BK * 128 + kk * 16 * 128, BK * 128, 1024), 1);
                fa_wgmma_commit();
        """
    }

    /// This group's columns of dQ into the tile written over the stage at `tile` (column blocks past D's are left
    /// out: the sums have none).
    private var storeQueryGradient: String {
        """
        #pragma unroll
                for (int j = 0; j < HD / 8; ++j) {
                    const int column = g0 * HD + 8 * j;
                    if (column >= QC * 64) continue;
                    float* const block = tile + (column / 64) * \(QueryGradientSums.tileFloats);
                    #pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const int row = 16 * w + lane / 4 + 8 * r;
                        *(float2*)(block + fa_dq_sums_index(row, column % 64 + 2 * (lane % 4))) = make_float2(dq[j][2 * r], dq[j][2 * r + 1]);
                    }
                }
                fa_fence_shared_for_async();
        """
    }

    /// This group's columns of dK or dV (`accumulator`, `columns` wide per group, `width` in the tensor) for row
    /// `r` of this thread's keys at `at`, times `factor`.
    private func storeRow(_ accumulator: String, columns: String, width: String, times factor: String, at row: String) -> String {
        """
        #pragma unroll
                for (int j = 0; j < \(columns) / 8; ++j) {
                    const int column = g0 * \(columns) + 8 * j + 2 * (lane % 4);
                    if (column < \(width))
                        *(fa_u32*)(\(row) + column) = fa_pack(\(accumulator)[j][2 * r] * \(factor), \(accumulator)[j][2 * r + 1] * \(factor));
                }
        """
    }

    private var kernel: String {
        let pending = "fa_score_mod_table_pending pending = fa_score_mod_table_pending_start();"
        let consumerWalk = walk(afterHead: !computesTableGradients ? "" : """
                fa_score_mod_table_gradients_flush(table_gradients, pending);  // per-head entries change with h
                        pending = fa_score_mod_table_pending_start();
            """)
        let stage = "ringBase\(tiles)(i % \(stages))"
        return """
        extern "C" __global__ void __launch_bounds__(\(threads), 1)
        \(name)(
            \(signature.declaration)) {
            constexpr int D = \(headDim), DV = \(valueDim), HD = \(paddedHeadDim / 2), HDV = \(paddedValueDim / 2);
            constexpr int BQ = \(queryBlock), BK = \(keyBlock), QC = \(QueryGradientSums.columnBlocks(headDim: headDim));
            \(pipeline.layout)
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
            \(ctaCoordinates)
            \(ProgrammaticLaunch.launchDependents)  // the dQ finish may take SMs this grid leaves idle

            if (warp >= \(4 * consumerGroups)) {  // the producer warpgroup
                \(pipeline.producer(residentAt: ("k0", "hkv"), streamedAt: ("q0", "h"), walk: walk(), registers: producerRegisters))
                \(queryGradientWarp(tile: stage, handBack: "fa_mbarrier_arrive(&empty[\(tiles * stages) + i % \(stages)])"))
            } else {
            asm volatile("setmaxnreg.inc.sync.aligned.u32 \(consumerRegisters);");
            // Consumer warpgroup `g0`: queries 32 g0 ..< 32 g0 + 32 of each block for the scores, columns
            // g0 HD ..< (g0 + 1) HD of dK and dQ and g0 HDV ..< (g0 + 1) HDV of dV. This thread holds keys
            // lane / 4 and lane / 4 + 8 of its warp's 16.
            const int g0 = warp / 4, w = warp % 4;
            const auto bothGroups = [&]() { fa_named_barrier_sync(1, \(128 * consumerGroups)); };
            float dk[HD / 8][4], dv[HDV / 8][4];
            #pragma unroll
            for (int j = 0; j < HD / 8; ++j) dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = 0.0f;
            #pragma unroll
            for (int j = 0; j < HDV / 8; ++j) dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;
            \(computesTableGradients ? pending : "")
            fa_mbarrier_wait(residentLoaded, 0);

            \(consumerWalk.open)
            \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                \(stepOperands)

                // St = K Qt and dPt = V dOt for this group's queries, both operands K-major in shared memory.
                float st[BQ / 16][4], dpt[BQ / 16][4];
                fa_wgmma_fence();
                \(HopperHelpers.kMajorProducts(n: queryBlock / 2, accumulator: "st", a: "sK", aRows: "BK", b: "sQ + g0 * 32 * 128", bRows: "BQ", depth: "D"))
                \(HopperHelpers.kMajorProducts(n: queryBlock / 2, accumulator: "dpt", a: "sV", aRows: "BK", b: "sdO + g0 * 32 * 128", bRows: "BQ", depth: "DV"))
                fa_wgmma_commit();
                fa_wgmma_wait<0>();
                fa_wgmma_pin(st);
                fa_wgmma_pin(dpt);

                // Pt and dSt, rounded to 16 bits, into shared memory for both groups' products.
                \(scoreGradients(tiles: "BQ / 16", query: "q0 + 32 * g0 + 8 * j + 2 * (lane % 4) + e % 2",
                                 key: "k0 + 16 * w + lane / 4 + 8 * (e / 2)"))
                {
                    fa_u32 pt[BQ / 32][4], dst[BQ / 32][4];
                    fa_pack_operands(st, pt);
                    fa_pack_operands(dpt, dst);
                    \(storeScores)
                }
                float dq[HD / 8][4];
                #pragma unroll
                for (int j = 0; j < HD / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;
                bothGroups();  // both groups' Pt and dSt are stored

                \(products)
                fa_wgmma_wait<0>();
                fa_wgmma_pin(dv);
                fa_wgmma_pin(dk);
                fa_wgmma_pin(dq);
                bothGroups();  // both groups are done reading the stage, Pt and dSt

                // dQ over the stage; every consumer thread arrives once step i − 1's tile has been handed back, so
                // the dQ warp never finds two phases completed ahead of its wait.
                float* const tile = (float*)\(stage);
                \(storeQueryGradient)
                if (i > 0) fa_mbarrier_wait(&empty[\(tiles * stages) + (i - 1) % \(stages)], ((i - 1) / \(stages)) & 1);
                fa_mbarrier_arrive(dQFull);
            \(consumerWalk.close)

            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int key = k0 + 16 * w + lane / 4 + 8 * r;
                if (key >= Skv) continue;
                const long long row = ((long long)b * Hkv + hkv) * Skv + key;
                \(storeRow("dk", columns: "HD", width: "D", times: "scale", at: "dK + row * D"))
                \(storeRow("dv", columns: "HDV", width: "DV", times: "1.0f", at: "dV + row * DV"))
            }
            }
        }

        """
    }
}
