/// The backward kernel that computes dQ (and the gradients of the Float tables a score mod reads) on tensor cores.
///
/// A CTA owns 64 query rows of one head (each of its 4 warps 16 rows; Q and dO resident in shared memory) and
/// walks the forward block list's key blocks, prefetching K and V with `cp.async`. Per block a warp recomputes
/// P = exp2(Q Kᵀ …) and dP = dO Vᵀ, forms dS = P (dP − Delta) ∂score′/∂score and accumulates dQ += dS K in
/// registers. Only this CTA writes its rows, in key order: dQ is deterministic without atomics. Table gradients
/// are added to fixed-point sums (``TableGradientSum``) as each score's ∂L/∂score′ appears.
struct MMAQueryGradientKernel: TensorCoreAttentionKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dQ"] }
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    var stages = 2

    var threads: Int { 128 }
    var queryBlock: Int { 64 }
    var keyBlock: Int { 64 }

    var name: String {
        "fa_backward_dq_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// Q and dO tiles, and per stage a K and a V tile (rows padded by 8 elements).
    var sharedMemoryBytes: Int {
        2 * 64 * (headDim + 8 + valueDim + 8) * (1 + stages)
    }

    var source: String {
        prelude + (scoreMod?.tableGradientDefinition ?? "") + kernel
    }

    private var kernel: String {
        let tableGradients = !computesTableGradients ? "" : """
                                if (keep) fa_score_mod_table_gradients(x, b, h, query, key, Sq, Skv, score_mod, upstream, table_gradients, pending);
            """
        return """
            extern "C" __global__ void __launch_bounds__(\(threads))
            \(name)(
                \(signature.declaration)) {
                constexpr int D = \(headDim), DV = \(valueDim), DP = D + 8, DVP = DV + 8, AHEAD = \(stages) - 1;
                constexpr float LOG2E = 1.4426950408889634f;
                extern __shared__ __align__(16) fa_u16 shared[];
                fa_u16* const sQ = shared;
                fa_u16* const sdO = sQ + 64 * DP;
                fa_u16* const sKV = sdO + 64 * DVP;  // stage i: K at sKV + i * STAGE, V 64 * DP further
                constexpr int STAGE = 64 * (DP + DVP);
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
                const int queryBlocks = (Sq + 63) / 64;
                const int queryBlock = queryBlocks - 1 - (int)blockIdx.y;  // later rows see more keys under causal
                const int b = blockIdx.x / Hq, h = blockIdx.x % Hq, hkv = h / (Hq / Hkv);
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                const int q0 = queryBlock * 64;
                fa_load_tile<64, D>(sQ, Q + b * qs0 + h * qs1, qs2, qs3, q0, Sq, vectorLoads);
                fa_load_tile<64, DV>(sdO, dO + b * dos0 + h * dos1, dos2, dos3, q0, Sq, vectorLoads);
                const fa_u16* keys = K + b * ks0 + hkv * ks1;
                const fa_u16* values = V + b * vs0 + hkv * vs1;

                // This thread's rows: r = 0, 1 are rows lane / 4 and lane / 4 + 8 of the warp's 16.
                float lse2[2], delta[2];
                int rows[2];
                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    rows[r] = q0 + warp * 16 + lane / 4 + 8 * r;
                    const long long row = ((long long)b * Hq + h) * Sq + rows[r];
                    const float lse = rows[r] < Sq ? LSE[row] : fa_negative_infinity();
                    lse2[r] = lse == fa_negative_infinity() ? __int_as_float(0x7f800000) : lse * LOG2E;
                    delta[r] = rows[r] < Sq ? Delta[row] : 0.0f;
                }
                float dq[D / 8][4];
                \(computesTableGradients ? "fa_score_mod_table_pending pending = fa_score_mod_table_pending_start();" : "")
                #pragma unroll
                for (int j = 0; j < D / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;

                \(SharedTileLoader.keyBlockLoop(queryBlocks: "queryBlocks", queryBlock: "queryBlock"))

                    // S = Q Kt and dP = dO Vt for the warp's 16 rows and the block's 64 keys (columns).
                    float s[8][4], dp[8][4];
                    fa_warp_rows_times_rows<D>(s, sQ + warp * 16 * DP, DP, sK, DP);
                    fa_warp_rows_times_rows<DV>(dp, sdO + warp * 16 * DVP, DVP, sV, DVP);

                    // dS into s.
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int query = rows[e / 2], key = k0 + 8 * j + 2 * (lane % 4) + e % 2;
                            \(BackwardKernelSource.probability(score: "s[j][e]", lse2: "lse2[e / 2]", mask: mask, scoreMod: scoreMod, indent: 28))
                            const float upstream = p == 0.0f ? 0.0f : p * (dp[j][e] - delta[e / 2]);
            \(tableGradients)
                            s[j][e] = upstream == 0.0f ? 0.0f : upstream * slope;  // slope may be inf where p = 0
                        }
                    }

                    // dQ += dS K over the block's 64 keys.
                    fa_warp_tile_times_rows<D>(dq, s, sK, DP);
                }
                asm volatile("cp.async.wait_all;" ::: "memory");
                \(computesTableGradients ? "fa_score_mod_table_gradients_flush(table_gradients, pending);" : "")

                #pragma unroll
                for (int r = 0; r < 2; ++r) {
                    if (rows[r] >= Sq) continue;
                    fa_store_tile_row<D>(dQ + (((long long)b * Hq + h) * Sq + rows[r]) * D, dq, r, scale);
                }
            }

            """
    }
}
