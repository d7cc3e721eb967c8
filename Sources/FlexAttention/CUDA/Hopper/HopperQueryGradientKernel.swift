/// The dQ kernel for Hopper (sm_90a): ``MMAQueryGradientKernel``'s work on `wgmma`, with TMA copies.
///
/// A CTA owns 128 query rows of one head (two consumer warpgroups of 64; Q and dO resident) and walks the forward
/// block list's 64-key blocks, K and V streamed through ``HopperPipeline`` (two stages or more). Per block a
/// warpgroup computes S = Q Kᵀ and dP = dO Vᵀ from shared memory, forms dS = P (dP − Delta) ∂score′/∂score in
/// registers, and adds dS K with dS from registers and K read MN-major; the products of the next block are issued
/// with dS K, and the warpgroups take turns to issue (``WarpgroupTurns``), as in ``HopperForwardKernel``. Only this CTA writes its rows, in key order: dQ is deterministic.
/// Table gradients are added to fixed-point sums (``TableGradientSum``) as each score's ∂L/∂score′ appears. The tensor maps of Q, K, V and dO
/// come before ``MMAQueryGradientKernel``'s parameters.
struct HopperQueryGradientKernel: HopperAttentionKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dQ"] }
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    var stages = 3

    var queryBlock: Int { 64 * consumerGroups }
    var keyBlock: Int { 64 }
    /// The N of the dS K product: D rounded up to whole column blocks (K's padding columns are zeros).
    var paddedHeadDim: Int { 64 * keyColumnBlocks }

    var readsTensorMaps: Bool { true }

    var name: String {
        "fa_hopper_backward_dq_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// Q and dO resident; K and V streamed, in rings of their own: V is done with once dP is, K only after dS K.
    var pipeline: HopperPipeline {
        HopperPipeline(
            resident: [HopperTile(pointer: "sQ", map: "qMap", rows: queryBlock, columnBlocks: keyColumnBlocks),
                       HopperTile(pointer: "sdO", map: "dOMap", rows: queryBlock, columnBlocks: valueColumnBlocks)],
            rings: [HopperRing(tiles: [HopperTile(pointer: "sK", map: "kMap", rows: keyBlock, columnBlocks: keyColumnBlocks)]),
                    HopperRing(tiles: [HopperTile(pointer: "sV", map: "vMap", rows: keyBlock, columnBlocks: valueColumnBlocks)])],
            stages: stages, consumerWarps: 4 * consumerGroups)
    }

    private var walk: (open: String, close: String) { HopperPipeline.keyBlockWalk(keyBlock: "BN") }
    /// The pipeline's rings: K, then V.
    private let keys = 0, values = 1

    /// Issues step `i`'s S = Q Kᵀ and dP = dO Vᵀ (both operands K-major in shared memory) as one commit group.
    private var issueScores: String {
        """
        \(HopperHelpers.kMajorProducts(n: keyBlock, accumulator: "s", a: "groupQ", aRows: "BM", b: pipeline.pointer(pipeline.rings[keys].tiles[0], stage: "i % \(stages)"), bRows: "BN", depth: "D"))
                        \(HopperHelpers.kMajorProducts(n: keyBlock, accumulator: "dp", a: "groupdO", aRows: "BM", b: pipeline.pointer(pipeline.rings[values].tiles[0], stage: "i % \(stages)"), bRows: "BN", depth: "\(valueDim)"))
                        fa_wgmma_commit();
        """
    }

    /// Issues dQ += dS K for step `v` as one commit group: dS from registers, K read MN-major (its 64-column blocks
    /// BN * 128 bytes apart, 8-key groups 1024).
    private func issueQueryGradient(step v: String) -> String {
        """
        \(HopperHelpers.mnMajorProducts(n: paddedHeadDim, accumulator: "dq", operands: "ds", b: pipeline.pointer(pipeline.rings[keys].tiles[0], stage: "(\(v)) % \(stages)"), rows: "BN", depth: "BN"))
                        fa_wgmma_commit();
        """
    }

    /// Step `i`'s S and dP (finished) turned into dS, in `s`.
    private var gradientScores: String {
        """
        \(HopperPipeline.keyBlockEntry(step: "begin + i", keyBlock: "BN"))
                        \(HopperHelpers.checkedOrNot("partial || k0 + BN > Skv", dsLoop(checked:)))
        """
    }

    var source: String {
        hopperPrelude([
            WGMMAShape(n: keyBlock, aFromRegisters: false), WGMMAShape(n: paddedHeadDim, aFromRegisters: true),
        ])
            + (scoreMod?.tableGradientDefinition ?? "") + kernel
    }

    /// The loop forming dS from S and dP, with or without the per-score bounds and mask checks.
    private func dsLoop(checked: Bool) -> String {
        let tableGradients = !computesTableGradients ? "" : """
                                if (keep) fa_score_mod_table_gradients(x, b, h, query, key, Sq, Skv, score_mod, upstream, table_gradients, pending);
            """
        return """
                    #pragma unroll
                    for (int j = 0; j < BN / 8; ++j) {
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int query = rows[e / 2], key = k0 + 8 * j + 2 * (lane % 4) + e % 2;
                            \(BackwardKernelSource.probability(score: "s[j][e]", lse2: "lse2[e / 2]", mask: mask, scoreMod: scoreMod, checked: checked, indent: 28))
                            const float upstream = p == 0.0f ? 0.0f : p * (dp[j][e] - delta[e / 2]);
            \(tableGradients)
                            s[j][e] = upstream == 0.0f ? 0.0f : upstream * slope;  // slope may be inf where p = 0
                        }
                    }
            """
    }

    /// Per step: S and dP (V's ring released when they are done), dS, then dS K (K's ring released when it is done)
    /// and the next dS packed.
    private var walkOneStepAhead: OneStepAheadWalk {
        OneStepAheadWalk(
            waitFirst: { pipeline.waitFull(ring: keys, step: $0) + "\n" + pipeline.waitFull(ring: values, step: $0) },
            issueFirst: issueScores, pinFirst: "fa_wgmma_pin(s);\nfa_wgmma_pin(dp);",
            releaseFirst: { pipeline.release(ring: values, step: $0) }, elementwise: gradientScores,
            waitSecond: { _ in "" }, issueSecond: issueQueryGradient(step:), pinSecond: "fa_wgmma_pin(dq);",
            releaseSecond: { pipeline.release(ring: keys, step: $0) }, pack: "fa_pack_operands(s, ds);")
    }

    private var kernel: String {
        """
            extern "C" __global__ void __launch_bounds__(\(threads), 1)
            \(name)(
                \(signature.declaration)) {
                constexpr int D = \(headDim), PD = \(paddedHeadDim), BM = \(queryBlock), BN = \(keyBlock);
                constexpr float LOG2E = 1.4426950408889634f;
                \(pipeline.layout)
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
                const int queryBlocks = (Sq + BM - 1) / BM;
                const int queryBlock = queryBlocks - 1 - (int)blockIdx.y;  // later rows see more keys under causal
                const int b = blockIdx.x / Hq, h = blockIdx.x % Hq, hkv = h / (Hq / Hkv);
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                const int q0 = queryBlock * BM;
                const int line = (b * maskBatchStride + h * maskHeadStride) * queryBlocks + queryBlock;
                const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, (Skv + BN - 1) / BN);
                const int begin = range.begin, end = range.end;
                const auto entryAt = [&](int step) { return fa_block_entry(blockList, step); };

                if (warp >= \(4 * consumerGroups)) {  // the producer warpgroup
                    \(pipeline.producer(residentAt: ("q0", "h"), streamedAt: ("k0", "hkv"), walk: walk, registers: producerRegisters))
                } else {
                asm volatile("setmaxnreg.inc.sync.aligned.u32 \(consumerRegisters);");
                // Consumer warpgroup `group`; this thread holds rows lane / 4 and lane / 4 + 8 of its warp's 16.
                const int group = warp / 4;
                float lse2[2], delta[2];
                int rows[2];
                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    rows[r] = q0 + 16 * warp + lane / 4 + 8 * r;
                    const long long row = ((long long)b * Hq + h) * Sq + rows[r];
                    const float lse = rows[r] < Sq ? LSE[row] : fa_negative_infinity();
                    lse2[r] = lse == fa_negative_infinity() ? __int_as_float(0x7f800000) : lse * LOG2E;
                    delta[r] = rows[r] < Sq ? Delta[row] : 0.0f;
                }
                float dq[PD / 8][4];
                #pragma unroll
                for (int j = 0; j < PD / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;
                \(computesTableGradients ? "fa_score_mod_table_pending pending = fa_score_mod_table_pending_start();" : "")
                fa_mbarrier_wait(residentLoaded, 0);
                const unsigned char* const groupQ = sQ + group * 64 * 128;
                const unsigned char* const groupdO = sdO + group * 64 * 128;
                \(WarpgroupTurns(groups: consumerGroups).start(group: "group"))

                // Step i's S and dP are issued with step i − 1's dS K, so dS of step i is formed while dS K runs.
                const int steps = end - begin;
                float s[BN / 8][4], dp[BN / 8][4];
                fa_u32 ds[BN / 16][4];  // step i − 1's dS, rounded: the A operand of dS K
                \(walkOneStepAhead.source)
                \(WarpgroupTurns(groups: consumerGroups).finish(group: "group"))
                \(computesTableGradients ? "fa_score_mod_table_gradients_flush(table_gradients, pending);" : "")

                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    if (rows[r] >= Sq) continue;
                    fa_u16* const row = dQ + (((long long)b * Hq + h) * Sq + rows[r]) * D;
                    \(HopperHelpers.storeRow("dq", r: "r", columns: "D", times: "scale", at: "row"))
                }
                }
            }

            """
    }
}
