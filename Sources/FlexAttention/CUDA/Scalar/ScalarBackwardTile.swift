/// What the two CUDA-core backward kernels share: tile sizes, the shared-memory layout, the loads, and the
/// recomputation of one block's probabilities P and score gradients dS.
///
/// Both kernels take one ``queryBlock`` and ``keyBlock``, so one block mask gives the dQ kernel's block list and the
/// dK/dV kernel's transposed one. The pieces are CUDA text spliced into both kernels' bodies; they use the names
/// ``declarations`` and the kernels' parameter lists introduce.
struct ScalarBackwardTile {
    let headDim: Int
    let valueDim: Int

    var keyBlock: Int { 32 }
    /// Up to 128 columns: 4 warps over 32 query rows. Beyond, 8 warps over 16 rows, so that each thread's dK/dV
    /// accumulators (`32 / warps` keys × columns / 32) stay in registers and the tiles fit in shared memory.
    var warps: Int { max(headDim, valueDim) <= 128 ? 4 : 8 }
    var queryBlock: Int { max(headDim, valueDim) <= 128 ? 32 : 16 }
    var threads: Int { 32 * warps }

    /// Q `[BM][D]`, dO `[BM][Dv]`, K `[32][D | 1]`, V `[32][Dv | 1]`, P and dS `[BM][32]`, LSE·log2 e and Delta
    /// `[BM]`, as floats.
    var sharedMemoryBytes: Int {
        4 * (queryBlock * (headDim + valueDim + 2 * keyBlock + 2) + keyBlock * ((headDim | 1) + (valueDim | 1)))
    }

    /// Constants and shared tiles; needs `threadIdx` only.
    var declarations: String {
        """
            constexpr int D = \(headDim), DV = \(valueDim), BM = \(queryBlock), BN = \(keyBlock), WARPS = \(warps);
            constexpr int KP = D | 1, VP = DV | 1, DJ = (D + 31) / 32, DVJ = (DV + 31) / 32;
            constexpr float LOG2E = 1.4426950408889634f;
            extern __shared__ float shared[];
            float* const sQ = shared;             // [BM][D]
            float* const sdO = sQ + BM * D;       // [BM][DV]
            float* const sK = sdO + BM * DV;      // [BN][KP]
            float* const sV = sK + BN * KP;       // [BN][VP]
            float* const sP = sV + BN * VP;       // [BM][BN]
            float* const sDS = sP + BM * BN;      // [BM][BN]
            float* const sLSE2 = sDS + BM * BN;   // [BM], LSE in base 2; -inf past Sq
            float* const sDelta = sLSE2 + BM;     // [BM]
            const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

        """
    }

    /// Loads query rows `q0 ..< q0 + BM` of head `h` in batch `b`: Q, dO, LSE and Delta.
    static let loadQueries = """
                fa_load_rows<BM, D, D>(sQ, Q + b * qs0 + h * qs1, qs2, qs3, q0, Sq);
                fa_load_rows<BM, DV, DV>(sdO, dO + b * dos0 + h * dos1, dos2, dos3, q0, Sq);
                for (int i = threadIdx.x; i < BM; i += blockDim.x) {
                    const int query = q0 + i;
                    const long long row = ((long long)b * Hq + h) * Sq + query;
                    sLSE2[i] = query < Sq ? LSE[row] * LOG2E : fa_negative_infinity();
                    sDelta[i] = query < Sq ? Delta[row] : 0.0f;
                }

        """

    /// Loads keys `k0 ..< k0 + BN` of kv head `hkv` in batch `b`: K and V.
    static let loadKeys = """
                fa_load_rows<BN, D, KP>(sK, K + b * ks0 + hkv * ks1, ks2, ks3, k0, Skv);
                fa_load_rows<BN, DV, VP>(sV, V + b * vs0 + hkv * vs1, vs2, vs3, k0, Skv);

        """

    /// P and dS = ∂loss/∂(q · k) = scale · ∂loss/∂x of the block (query rows `q0 …`, keys `k0 …`, `partial` from its
    /// block list entry) into `sP` and `sDS`: warp w takes rows `w · BM / WARPS ..< +BM / WARPS`, lane j key `k0 + j`.
    /// Rows with LSE = −∞ (and rows past Sq) give 0. With `tableGradients`, kept scores also add their Float
    /// tables' gradients (`table_gradients`, through the kernel's `pending` sums).
    static func scores(mask: CUDAModFunction?, scoreMod: CUDAModFunction?, tableGradients: Bool) -> String {
        let modify = scoreMod == nil
            ? "const float modified = x;"
            : "const float modified = fa_score_mod(x, b, h, query, key, Sq, Skv, score_mod, &slope);"
        let addTableGradients = scoreMod == nil || !tableGradients ? "" : """
            if (keep) fa_score_mod_table_gradients(x, b, h, query, key, Sq, Skv, score_mod, upstream, table_gradients, pending);
            """
        return """
                    {
                        constexpr int RW = BM / WARPS;
                        const int key = k0 + lane;
                        float s[RW], dp[RW];
                        #pragma unroll
                        for (int r = 0; r < RW; ++r) s[r] = dp[r] = 0.0f;
                        #pragma unroll 4
                        for (int d = 0; d < D; ++d) {
                            const float k = sK[lane * KP + d];
                            #pragma unroll
                            for (int r = 0; r < RW; ++r) s[r] = fmaf(sQ[(warp * RW + r) * D + d], k, s[r]);
                        }
                        #pragma unroll 4
                        for (int c = 0; c < DV; ++c) {
                            const float v = sV[lane * VP + c];
                            #pragma unroll
                            for (int r = 0; r < RW; ++r) dp[r] = fmaf(sdO[(warp * RW + r) * DV + c], v, dp[r]);
                        }
                        #pragma unroll
                        for (int r = 0; r < RW; ++r) {
                            const int i = warp * RW + r, query = q0 + i;
                            const float x = s[r] * scale;
                            float slope = 1.0f;  // d modified / d x
                            \(modify)
                            const bool keep = \(ModKernelText.keep(
                                bound: "key < Skv && sLSE2[i] != fa_negative_infinity()",
                                masked: ModKernelText.maskCall(mask)));
                            const float p = keep ? exp2f(fmaf(modified, LOG2E, -sLSE2[i])) : 0.0f;
                            // d loss / d modified, 0 wherever p is (masked, or underflowed): dP − Delta may be ±∞ there.
                            const float upstream = p == 0.0f ? 0.0f : p * (dp[r] - sDelta[i]);
                            \(addTableGradients)
                            sP[i * BN + lane] = p;
                            // Selected, not multiplied: where p is 0 the slope may be NaN or ±∞.
                            sDS[i * BN + lane] = upstream == 0.0f ? 0.0f : scale * upstream * slope;
                        }
                    }

            """
    }
}

/// The two CUDA-core backward kernels: both run on one ``ScalarBackwardTile``, so their block lists agree.
protocol ScalarBackwardKernel: AttentionKernel {
    var headDim: Int { get }
    var valueDim: Int { get }
}

extension ScalarBackwardKernel {
    var tile: ScalarBackwardTile { ScalarBackwardTile(headDim: headDim, valueDim: valueDim) }
    var threads: Int { tile.threads }
    var queryBlock: Int { tile.queryBlock }
    var keyBlock: Int { tile.keyBlock }
    var sharedMemoryBytes: Int { tile.sharedMemoryBytes }
}
