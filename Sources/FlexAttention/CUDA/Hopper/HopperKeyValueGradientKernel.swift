/// The dK/dV kernel for Hopper (sm_90a): ``MMAKeyValueGradientKernel``'s work on `wgmma`, with TMA copies.
///
/// A CTA owns 128 keys of one key/value head (two consumer warpgroups of 64; K and V resident) and walks, for each
/// query head of the group in turn, the transposed block list's 64-query blocks, Q and dO streamed through
/// ``HopperPipeline``. Per block a warpgroup computes Sᵀ = K Qᵀ and dPᵀ = V dOᵀ from shared memory, forms Pᵀ and
/// dSᵀ = Pᵀ (dPᵀ − Delta) ∂score′/∂score in registers (the block's LSE · log2 e and Delta, which ``DeltaKernel``
/// lays out per block, arrive in the stage with Q and dO by a bulk copy), and adds Pᵀ dO to dV and dSᵀ Q to dK with
/// the A operands from registers and dO, Q read MN-major. Every warpgroup owns its keys: the sums run in a fixed order
/// and each row is written once. The tensor maps of Q, K, V and dO come before ``MMAKeyValueGradientKernel``'s
/// parameters.
struct HopperKeyValueGradientKernel: HopperAttentionKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dK", "dV"] }
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    var stages = 3

    /// The blocks ``DeltaKernel`` lays out LSE and Delta in.
    var queryBlock: Int { DeltaKernel.rowBlock }
    var readsBlockRows: Bool { true }
    var keyBlock: Int { 64 * consumerGroups }

    var readsTensorMaps: Bool { true }

    var name: String {
        "fa_hopper_backward_dkdv_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// K and V resident; Q, dO and the block's LSE and Delta streamed.
    var pipeline: HopperPipeline {
        HopperPipeline(
            resident: [HopperTile(pointer: "sK", map: "kMap", rows: keyBlock, columnBlocks: keyColumnBlocks),
                       HopperTile(pointer: "sV", map: "vMap", rows: keyBlock, columnBlocks: valueColumnBlocks)],
            rings: [HopperRing(
                tiles: [HopperTile(pointer: "sQ", map: "qMap", rows: queryBlock, columnBlocks: keyColumnBlocks),
                        HopperTile(pointer: "sdO", map: "dOMap", rows: queryBlock, columnBlocks: valueColumnBlocks)],
                copies: [HopperBulkCopy(
                    pointer: "sRows", source: "blockRows + (((long long)b * Hq + h) * queryBlocks + q0 / BQ) * 2 * BQ",
                    bytes: 2 * queryBlock * 4)])],
            stages: stages, consumerWarps: 4 * consumerGroups)
    }

    /// Registers bound the head dims: dK and dV accumulators for 64 keys take 64 per thread each at D = Dv = 128.
    static func supports(headDim: Int, valueDim: Int) -> Bool { headDim <= 128 && valueDim <= 128 }

    var source: String {
        hopperPrelude([
            WGMMAShape(n: queryBlock, aFromRegisters: false), WGMMAShape(n: 64 * keyColumnBlocks, aFromRegisters: true),
            WGMMAShape(n: 64 * valueColumnBlocks, aFromRegisters: true),
        ])
            + kernel
    }

    /// The query heads of the group in order, each through its line of the transposed list; `i` counts steps
    /// across heads, `q0` is the block's first query.
    private var walk: (open: String, close: String) {
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
        """, "}}")
    }

    /// The loop forming Pt and dSt from St and dPt, with or without the per-score bounds and mask checks.
    private func scoreLoop(checked: Bool) -> String {
        """
                #pragma unroll
                for (int j = 0; j < BQ / 8; ++j) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int query = q0 + 8 * j + 2 * (lane % 4) + e % 2, key = k0 + 16 * warp + lane / 4 + 8 * (e / 2);
                        \(BackwardKernelSource.probability(score: "st[j][e]", lse2: "lse2[query - q0]", mask: mask, scoreMod: scoreMod, checked: checked, indent: 24))
                        st[j][e] = p;
                        dpt[j][e] = p == 0.0f ? 0.0f : p * (dpt[j][e] - delta[query - q0]) * slope;
                    }
                }
        """
    }

    private var kernel: String {
        """
        extern "C" __global__ void __launch_bounds__(\(threads), 1)
        \(name)(
            \(signature.declaration)) {
            constexpr int D = \(headDim), DV = \(valueDim), PD = \(64 * keyColumnBlocks), PDV = \(64 * valueColumnBlocks);
            constexpr int BQ = \(queryBlock), BK = \(keyBlock);
            \(pipeline.layout)
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
            const int keyBlocks = (Skv + BK - 1) / BK, queryBlocks = (Sq + BQ - 1) / BQ;
            const int keyBlock = blockIdx.y;
            const int b = blockIdx.x / Hkv, hkv = blockIdx.x % Hkv, group = Hq / Hkv;
            const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
            const int k0 = keyBlock * BK;

            if (warp >= \(4 * consumerGroups)) {  // the producer warpgroup
                \(pipeline.producer(residentAt: ("k0", "hkv"), streamedAt: ("q0", "h"), walk: walk, registers: producerRegisters))
            } else {
            asm volatile("setmaxnreg.inc.sync.aligned.u32 \(consumerRegisters);");
            // Consumer warpgroup `g0`; this thread holds keys lane / 4 and lane / 4 + 8 of its warp's 16.
            const int g0 = warp / 4;
            float dk[PD / 8][4], dv[PDV / 8][4];
            #pragma unroll
            for (int j = 0; j < PD / 8; ++j) dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = 0.0f;
            #pragma unroll
            for (int j = 0; j < PDV / 8; ++j) dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;
            fa_mbarrier_wait(residentLoaded, 0);
            const unsigned char* const groupK = sK + g0 * 64 * 128;
            const unsigned char* const groupV = sV + g0 * 64 * 128;
            \(WarpgroupTurns(groups: consumerGroups).start(group: "g0"))

            \(walk.open)
            \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const unsigned char* const sQ = \(pipeline.pointer(pipeline.rings[0].tiles[0], stage: "i % \(stages)"));
                const unsigned char* const sdO = \(pipeline.pointer(pipeline.rings[0].tiles[1], stage: "i % \(stages)"));
                // The block's LSE in base 2 (+inf past the end or for rows that keep nothing) and Delta.
                const float* const lse2 = (const float*)\(pipeline.pointer(pipeline.rings[0].copies[0], stage: "i % \(stages)"));
                const float* const delta = lse2 + BQ;
                \(pipeline.waitFull(step: "i"))

                // St = K Qt and dPt = V dOt, both operands K-major in shared memory.
                float st[BQ / 8][4], dpt[BQ / 8][4];
                \(HopperHelpers.productPair(n: queryBlock, first: ("st", "groupK", "sQ", "D"), second: ("dpt", "groupV", "sdO", "DV"), aRows: "BK", bRows: "BQ"))

                // Pt and dSt, rounded to 16 bits as the A operands of Pt dO and dSt Q.
                \(HopperHelpers.checkedOrNot("partial || k0 + BK > Skv", scoreLoop(checked:)))
                fa_u32 pt[BQ / 16][4], dst[BQ / 16][4];
                fa_pack_operands(st, pt);
                fa_pack_operands(dpt, dst);

                // dV += Pt dO and dK += dSt Q: dO and Q read MN-major, 64-column blocks BQ * 128 bytes apart.
                awaitTurn();
                fa_wgmma_fence();
                #pragma unroll
                for (int kk = 0; kk < BQ / 16; ++kk) {
                    fa_wgmma_rs_\(64 * valueColumnBlocks)(dv, pt[kk], fa_wgmma_descriptor(sdO + kk * 16 * 128, BQ * 128, 1024));
                    fa_wgmma_rs_\(64 * keyColumnBlocks)(dk, dst[kk], fa_wgmma_descriptor(sQ + kk * 16 * 128, BQ * 128, 1024));
                }
                fa_wgmma_commit();
                passTurn();
                fa_wgmma_wait<0>();
                fa_wgmma_pin(dv);
                fa_wgmma_pin(dk);
                \(pipeline.release(step: "i"))
            \(walk.close)
            \(WarpgroupTurns(groups: consumerGroups).finish(group: "g0"))

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
