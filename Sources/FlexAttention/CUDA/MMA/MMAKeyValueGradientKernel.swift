/// The backward kernel that computes dK and dV on tensor cores (`mma.sync` m16n8k16), FlashAttention-2 style.
///
/// A CTA owns 64 keys of one key/value head (each of its 4 warps 16 of them, K and V resident in shared memory)
/// and walks, for every query head of the group in turn, the query blocks of the transposed block list: Q, dO,
/// LSE and Delta of the next block are prefetched with `cp.async` while this one is processed. Per block a warp
/// recomputes Pᵀ = exp2(K Qᵀ …) and dPᵀ = V dOᵀ for its keys, then dSᵀ = Pᵀ (dPᵀ − Delta) ∂score′/∂score and
/// accumulates dV += Pᵀ dO and dK += dSᵀ Q in registers (Pᵀ and dSᵀ rounded to the input dtype as MMA operands).
/// Every warp works on its own keys, so the sums run in a fixed order and each gradient row is written once.
struct MMAKeyValueGradientKernel: TensorCoreAttentionKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dK", "dV"] }
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
        "fa_backward_dkdv_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// K and V tiles, and per stage a Q tile, a dO tile (rows padded by 8 elements, as in ``MMAForwardKernel``) and 64
    /// LSE and Delta values.
    var sharedMemoryBytes: Int {
        2 * 64 * (headDim + 8 + valueDim + 8) * (1 + stages) + stages * 2 * 64 * 4
    }

    var source: String {
        prelude + kernel
    }

    private var kernel: String {
        """
        extern "C" __global__ void __launch_bounds__(\(threads))
        \(name)(
            \(signature.declaration)) {
            constexpr int D = \(headDim), DV = \(valueDim), DP = D + 8, DVP = DV + 8, AHEAD = \(stages) - 1;
            constexpr float LOG2E = 1.4426950408889634f;
            extern __shared__ __align__(16) fa_u16 shared[];
            fa_u16* const sK = shared;
            fa_u16* const sV = sK + 64 * DP;
            fa_u16* const sStages = sV + 64 * DVP;  // stage i: Q, then dO, then 64 LSE · log2 e and 64 Delta floats
            constexpr int STAGE = 64 * (DP + DVP) + 2 * 64 * 2;
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
            const int keyBlocks = (Skv + 63) / 64, queryBlocks = (Sq + 63) / 64;
            const int keyBlock = blockIdx.y;
            const int b = blockIdx.x / Hkv, hkv = blockIdx.x % Hkv, group = Hq / Hkv;
            const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
            const int k0 = keyBlock * 64;
            fa_load_tile<64, D>(sK, K + b * ks0 + hkv * ks1, ks2, ks3, k0, Skv, vectorLoads);
            fa_load_tile<64, DV>(sV, V + b * vs0 + hkv * vs1, vs2, vs3, k0, Skv, vectorLoads);

            // The walk: query heads of the group in order, each through its line of the transposed list.
            struct Cursor { int head, step, end; };
            const auto lineOf = [&](int g) { return (b * maskBatchStride + (hkv * group + g) * maskHeadStride) * keyBlocks + keyBlock; };
            const auto cursorAt = [&](int g) {
                const fa_block_range range = fa_block_range_of(blockStarts, blockList, lineOf(g), queryBlocks);
                return Cursor{g, range.begin, range.end};
            };
            const auto settle = [&](Cursor c) {
                while (c.step >= c.end && c.head + 1 < group) c = cursorAt(c.head + 1);
                return c;
            };
            const auto entryAt = [&](Cursor c) { return fa_block_entry(blockList, c.step); };
            // Starts loading the Q, dO, LSE and Delta rows of c's query block into stage `slot`; LSE is kept in
            // base 2, +inf for rows past the end or keeping nothing, so that their probabilities come out 0.
            const auto load = [&](Cursor c, int slot) {
                if (c.step >= c.end) return;
                const int h = hkv * group + c.head, q0 = (entryAt(c) >> 1) * 64;
                fa_u16* stage = sStages + slot * STAGE;
                fa_load_tile<64, D>(stage, Q + b * qs0 + h * qs1, qs2, qs3, q0, Sq, vectorLoads);
                fa_load_tile<64, DV>(stage + 64 * DP, dO + b * dos0 + h * dos1, dos2, dos3, q0, Sq, vectorLoads);
                float* rowsOut = (float*)(stage + 64 * (DP + DVP));
                for (int i = threadIdx.x; i < 64; i += blockDim.x) {
                    const int query = q0 + i;
                    const long long row = ((long long)b * Hq + h) * Sq + query;
                    const float lse = query < Sq ? LSE[row] : fa_negative_infinity();
                    rowsOut[i] = lse == fa_negative_infinity() ? __int_as_float(0x7f800000) : lse * LOG2E;
                    rowsOut[64 + i] = query < Sq ? Delta[row] : 0.0f;
                }
            };

            float dk[D / 8][4], dv[DV / 8][4];
            #pragma unroll
            for (int j = 0; j < D / 8; ++j) dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = 0.0f;
            #pragma unroll
            for (int j = 0; j < DV / 8; ++j) dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;

            Cursor current = settle(cursorAt(0));
            if (AHEAD) load(current, 0);
            fa_cp_async_commit();  // K and V join the first group
            for (int iteration = 0; current.step < current.end; ++iteration) {
                const Cursor next = settle(Cursor{current.head, current.step + 1, current.end});
                __syncthreads();  // every warp is done with the stage the load below overwrites
                load(AHEAD ? next : current, (iteration + AHEAD) % (AHEAD + 1));
                fa_cp_async_commit();
                fa_cp_async_wait<AHEAD>();
                __syncthreads();

                const int entry = entryAt(current);
                const int h = hkv * group + current.head, q0 = (entry >> 1) * 64;
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const bool partial = (entry & 1) != 0;
                const fa_u16* sQ = sStages + iteration % (AHEAD + 1) * STAGE;
                const fa_u16* sdO = sQ + 64 * DP;
                const float* sLse = (const float*)(sdO + 64 * DVP);
                const float* sDelta = sLse + 64;

                // St = K Qt and dPt = V dOt for this warp's 16 keys (rows) and the block's 64 queries (columns).
                float st[8][4], dpt[8][4];
                fa_warp_rows_times_rows<D>(st, sK + warp * 16 * DP, DP, sQ, DP);
                fa_warp_rows_times_rows<DV>(dpt, sV + warp * 16 * DVP, DVP, sdO, DVP);

                // Pt into st, dSt into dpt.
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int column = 8 * j + 2 * (lane % 4) + e % 2;
                        const int query = q0 + column, key = k0 + warp * 16 + lane / 4 + 8 * (e / 2);
                        \(BackwardKernelSource.probability(score: "st[j][e]", lse2: "sLse[column]", mask: mask, scoreMod: scoreMod, indent: 24))
                        st[j][e] = p;
                        dpt[j][e] = p == 0.0f ? 0.0f : p * (dpt[j][e] - sDelta[column]) * slope;
                    }
                }

                // dV += Pt dO and dK += dSt Q, over the block's 64 queries.
                fa_warp_tile_times_rows<DV>(dv, st, sdO, DVP);
                fa_warp_tile_times_rows<D>(dk, dpt, sQ, DP);
                current = next;
            }
            asm volatile("cp.async.wait_all;" ::: "memory");  // a key block no query sees never waited for K and V

            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int key = k0 + warp * 16 + lane / 4 + 8 * r;
                if (key >= Skv) continue;
                const long long row = ((long long)b * Hkv + hkv) * Skv + key;
                fa_store_tile_row<D>(dK + row * D, dk, r, scale);
                fa_store_tile_row<DV>(dV + row * DV, dv, r, 1.0f);
            }
        }

        """
    }
}
