/// The FlashAttention-2 forward kernel for 16-bit inputs on tensor cores (`mma.sync` m16n8k16, sm_80 and later).
///
/// A CTA of 4 warps keeps 64 or 128 query rows in shared memory (one or two 16-row tiles per warp,
/// ``rowTiles``) and walks 64-key blocks: S = Q Kᵀ and O += P V on tensor cores with Float32 accumulators, the
/// online softmax in base 2 on the S fragments in registers (each thread holds two rows of each tile; a row's
/// four threads reduce with shuffles), P converted to 16 bits in registers as the A operand of P V. The score mod is applied to every score; the mask only in blocks the block
/// list marks partial. Writes O (input dtype) and the natural-log LSE.
///
/// K and V tiles are prefetched `stages - 1` blocks ahead with `cp.async` into a ring of shared buffers, so the
/// copy of the next block overlaps the tensor-core work on this one.
///
/// Head dims D and Dv are compile-time constants: multiples of 16 from 16 to 256. Rows and keys past the
/// sequence ends are loaded as zeros and never written; any strides work (rows are copied 16 bytes at a time
/// with `cp.async` when the last dim is contiguous and aligned, element by element and synchronously otherwise).
struct MMAForwardKernel: TensorCoreAttentionKernel, ForwardAttentionKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    /// Emitted as `fa_mask`; nil keeps every score (then the kernel gets no block list either).
    let mask: CUDAModFunction?
    /// Emitted as `fa_score_mod`.
    let scoreMod: CUDAModFunction?
    /// Shared K/V buffers: 2 overlaps loads with compute; 1 (load, then compute) fits devices with less shared
    /// memory (``fitting(maxSharedMemory:)``).
    var stages = 2

    var keyBlock: Int { 64 }
    var threads: Int { 128 }
    static let supportedHeadDims = Array(stride(from: 16, through: 256, by: 16))

    /// 16-row query tiles per warp. Two let each K and V fragment that `ldmatrix` brings from shared memory feed
    /// twice as many MMAs (shared-memory bandwidth, not the tensor cores, bounds one tile), at the cost of twice
    /// the O accumulators in registers: affordable up to Dv = 128.
    var rowTiles: Int { valueDim <= 128 ? 2 : 1 }
    /// Query rows per CTA, the block mask's query block size.
    var queryBlock: Int { 64 * rowTiles }

    var name: String {
        "fa_forward_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// A Q tile of `queryBlock × (D + 8)` and per stage a K tile of `64 × (D + 8)` and a V tile of `64 × (Dv + 8)` 16-bit
    /// elements; the 8 extra columns shift each row by 16 bytes, so `ldmatrix`'s eight row addresses fall in
    /// different banks.
    var sharedMemoryBytes: Int {
        2 * (queryBlock * (headDim + 8) + stages * keyBlock * (headDim + 8 + valueDim + 8))
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
                constexpr int M = \(rowTiles), BM = 64 * M;  // row tiles per warp, query rows per CTA
                constexpr float LOG2E = 1.4426950408889634f;
                const float scaleLog2 = scale * LOG2E;
                extern __shared__ __align__(16) fa_u16 shared[];
                fa_u16* sQ = shared;
                fa_u16* const sKV = sQ + BM * DP;  // stage i: K at sKV + i * STAGE, V 64 * DP further
                constexpr int STAGE = 64 * (DP + DVP);
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))

                const int qBlocks = (Sq + BM - 1) / BM;
                const int qBlock = qBlocks - 1 - (int)blockIdx.y;  // later rows see more keys under causal: start them first
                const int b = blockIdx.x / Hq, h = blockIdx.x % Hq, hkv = h / (Hq / Hkv);
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                const int q0 = qBlock * BM;
                fa_load_tile<BM, D>(sQ, Q + b * qs0 + h * qs1, qs2, qs3, q0, Sq, vectorLoads);
                const fa_u16* keys = K + b * ks0 + hkv * ks1;
                const fa_u16* values = V + b * vs0 + hkv * vs1;

                // Tile m of this warp holds CTA rows warp * 16M + 16m ..< +16; this thread's row i (of 2M) is
                // row i % 2 of that tile's fragments, which live in [m = i / 2][..][2 * (i % 2) + {0, 1}].
                float o[M][DV / 8][4], rowMax[2 * M], rowSum[2 * M];  // rowMax in base 2; rowSum this thread's part
                int rows[2 * M];
                #pragma unroll
                for (int i = 0; i < 2 * M; ++i) {
                    rowMax[i] = fa_negative_infinity();
                    rowSum[i] = 0.0f;
                    rows[i] = q0 + warp * 16 * M + 16 * (i / 2) + lane / 4 + 8 * (i % 2);
                    #pragma unroll
                    for (int j = 0; j < DV / 8; ++j) o[i / 2][j][2 * (i % 2)] = o[i / 2][j][2 * (i % 2) + 1] = 0.0f;
                }

                \(SharedTileLoader.keyBlockLoop(queryBlocks: "qBlocks", queryBlock: "qBlock"))

                    // S = Q Kt: s[m][j] holds keys k0 + 8j + 2(lane % 4) + {0, 1} of tile m's rows ([0], [1] and
                    // [2], [3]); each K fragment serves all M tiles.
                    float s[M][8][4];
                    #pragma unroll
                    for (int m = 0; m < M; ++m)
                        #pragma unroll
                        for (int j = 0; j < 8; ++j) s[m][j][0] = s[m][j][1] = s[m][j][2] = s[m][j][3] = 0.0f;
                    #pragma unroll
                    for (int kk = 0; kk < D / 16; ++kk) {
                        fa_u32 a[M][4];
                        #pragma unroll
                        for (int m = 0; m < M; ++m)
                            fa_ldmatrix_x4(a[m], sQ + (warp * 16 * M + 16 * m + lane % 8 + 8 * (lane / 8 % 2)) * DP + kk * 16 + 8 * (lane / 16));
                        #pragma unroll
                        for (int n = 0; n < 4; ++n) {
                            fa_u32 bk[4];
                            fa_ldmatrix_x4(bk, sK + (n * 16 + lane % 8 + 8 * (lane / 16)) * DP + kk * 16 + 8 * (lane / 8 % 2));
                            #pragma unroll
                            for (int m = 0; m < M; ++m) {
                                fa_mma(s[m][2 * n], a[m], bk[0], bk[1]);
                                fa_mma(s[m][2 * n + 1], a[m], bk[2], bk[3]);
                            }
                        }
                    }

                    // Mods, mask and the online softmax, in base 2. Row maxima and sums are reduced as trees, not
                    // chains: with two warps per scheduler, a serial chain of 16 dependent operations per row would
                    // leave the tensor cores idle.
                    #pragma unroll
                    for (int m = 0; m < M; ++m)
                        #pragma unroll
                        for (int j = 0; j < 8; ++j) {
                            #pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int query = rows[2 * m + e / 2], key = k0 + 8 * j + 2 * (lane % 4) + e % 2;
                                const float x = \(forwardScore("s[m][j][e]"));
                                const bool keep = \(ModKernelText.keep(mask: mask));
                                s[m][j][e] = keep ? x : fa_negative_infinity();
                            }
                        }
                    #pragma unroll
                    for (int i = 0; i < 2 * M; ++i) {
                        const int m = i / 2, r = i % 2;
                        float t[8];
                        #pragma unroll
                        for (int j = 0; j < 8; ++j) t[j] = fmaxf(s[m][j][2 * r], s[m][j][2 * r + 1]);
                        #pragma unroll
                        for (int w = 4; w > 0; w /= 2)
                            #pragma unroll
                            for (int j = 0; j < w; ++j) t[j] = fmaxf(t[j], t[j + w]);
                        float blockMax = fmaxf(rowMax[i], t[0]);
                        blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 1));
                        blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 2));
                        // A row with nothing kept yet subtracts 0, not -inf, so its exponentials are 0, never NaN.
                        const float reference = fa_softmax_reference(blockMax);
                        const float correction = fa_exp2(rowMax[i] - reference);
                        rowMax[i] = blockMax;
                        #pragma unroll
                        for (int j = 0; j < DV / 8; ++j) {
                            o[m][j][2 * r] *= correction;
                            o[m][j][2 * r + 1] *= correction;
                        }
                        #pragma unroll
                        for (int j = 0; j < 8; ++j) {
                            s[m][j][2 * r] = fa_exp2(s[m][j][2 * r] - reference);
                            s[m][j][2 * r + 1] = fa_exp2(s[m][j][2 * r + 1] - reference);
                            t[j] = s[m][j][2 * r] + s[m][j][2 * r + 1];
                        }
                        #pragma unroll
                        for (int w = 4; w > 0; w /= 2)
                            #pragma unroll
                            for (int j = 0; j < w; ++j) t[j] += t[j + w];
                        rowSum[i] = rowSum[i] * correction + t[0];
                    }

                    // O += P V, P from the S fragments (an accumulator pair is an A operand pair); each V fragment
                    // serves all M tiles.
                    #pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
                        fa_u32 a[M][4];
                        #pragma unroll
                        for (int m = 0; m < M; ++m) {
                            a[m][0] = fa_pack(s[m][2 * kk][0], s[m][2 * kk][1]);
                            a[m][1] = fa_pack(s[m][2 * kk][2], s[m][2 * kk][3]);
                            a[m][2] = fa_pack(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
                            a[m][3] = fa_pack(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
                        }
                        #pragma unroll
                        for (int n = 0; n < DV / 16; ++n) {
                            fa_u32 bv[4];
                            fa_ldmatrix_x4_trans(bv, sV + (kk * 16 + lane % 8 + 8 * (lane / 8 % 2)) * DVP + n * 16 + 8 * (lane / 16));
                            #pragma unroll
                            for (int m = 0; m < M; ++m) {
                                fa_mma(o[m][2 * n], a[m], bv[0], bv[1]);
                                fa_mma(o[m][2 * n + 1], a[m], bv[2], bv[3]);
                            }
                        }
                    }
                }
                asm volatile("cp.async.wait_all;" ::: "memory");  // a row with no key blocks never waited for Q

                #pragma unroll
                for (int i = 0; i < 2 * M; ++i) {
                    const int m = i / 2, r = i % 2;
                    \(outputRow(sum: "rowSum[i]", maximum: "rowMax[i]", query: "rows[i]", accumulator: "o[m]"))
                }
            }

            """
    }
}
