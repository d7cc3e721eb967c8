/// The forward pass on CUDA cores in Float32 FMA: Float32 inputs at Float32 accuracy, and head dims the tensor-core
/// ``MMAForwardKernel`` does not take (any D and Dv from 1 up to what shared memory holds), for every dtype.
///
/// A CTA of 4 warps owns ``queryBlock`` query rows, ``rowsPerWarp`` per warp, and walks 32-key blocks with K and V
/// staged in shared memory as Float32. Each lane scores one key against its warp's rows (Q rows in shared memory,
/// read as broadcasts), the online softmax runs in base 2 with warp reductions and `exp2f`, and each lane
/// accumulates output columns `lane + 32j` with P broadcast by shuffles. Parameters, block list and the mods'
/// semantics are ``MMAForwardKernel``'s (the score mod on every score, the mask only in partial blocks and on keys
/// past `Skv`); `vectorLoads` is ignored.
struct ScalarForwardKernel: ForwardAttentionKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    /// Emitted as `fa_mask`; nil keeps every score (then the kernel gets no block list either).
    let mask: CUDAModFunction?
    /// Emitted as `fa_score_mod`.
    let scoreMod: CUDAModFunction?

    var threads: Int { 128 }
    var keyBlock: Int { 32 }
    /// Each K value read from shared memory serves this many rows. Eight rows of `Dv / 32` accumulators per lane
    /// fit in registers up to 256 columns; beyond, four, which also keeps the Q tile small enough for an A100.
    var rowsPerWarp: Int { max(headDim, valueDim) <= 256 ? 8 : 4 }
    var queryBlock: Int { 4 * rowsPerWarp }

    var name: String {
        ScalarKernelSource.name(
            "fa_scalar_forward", dtype: dtype, headDim: headDim, valueDim: valueDim, mask: mask, scoreMod: scoreMod)
    }

    /// Q `[queryBlock][D]`, K `[32][D | 1]` (odd pitch: lanes read one key each) and V `[32][Dv]`, as floats.
    var sharedMemoryBytes: Int { 4 * (queryBlock * headDim + keyBlock * (headDim | 1) + keyBlock * valueDim) }

    /// The largest head dim (D = Dv) whose kernel fits `bytes` of shared memory per block.
    static func largestHeadDim(sharedMemory bytes: Int) -> Int {
        (1...4096).last {
            ScalarForwardKernel(dtype: .float32, headDim: $0, valueDim: $0, mask: nil, scoreMod: nil)
                .sharedMemoryBytes <= bytes
        } ?? 0
    }

    var source: String { ScalarKernelSource.prelude(dtype, mask: mask, scoreMod: scoreMod) + kernel }

    private var kernel: String {
        let storage = dtype.cudaStorageType
        let modifyScore = scoreMod == nil ? "" : "x = fa_score_mod(x, b, h, query, key, Sq, Skv, score_mod, nullptr);"
        return """
            extern "C" __global__ void __launch_bounds__(\(threads))
            \(name)(
                \(signature.declaration)) {
                constexpr int D = \(headDim), DV = \(valueDim), R = \(rowsPerWarp), BM = 4 * R, BN = 32;
                constexpr int KP = D | 1, DVJ = (DV + 31) / 32;  // K's pitch; output columns per lane
                constexpr float LOG2E = 1.4426950408889634f;
                extern __shared__ float shared[];
                float* const sQ = shared;         // [BM][D]
                float* const sK = sQ + BM * D;    // [BN][KP]
                float* const sV = sK + BN * KP;   // [BN][DV]
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
                const int qBlocks = (Sq + BM - 1) / BM;
                const int qBlock = qBlocks - 1 - (int)blockIdx.y;  // later rows see more keys under causal: start them first
                const int b = blockIdx.x / Hq, h = blockIdx.x % Hq, hkv = h / (Hq / Hkv);
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                const int q0 = qBlock * BM, row0 = warp * R;  // this warp's rows: q0 + row0 + r, r < R
                fa_load_rows<BM, D, D>(sQ, Q + b * qs0 + h * qs1, qs2, qs3, q0, Sq);
                const \(storage)* keys = K + b * ks0 + hkv * ks1;
                const \(storage)* values = V + b * vs0 + hkv * vs1;

                // Output columns lane + 32j; rowMax in base 2, rowSum this lane's part of the row's sum.
                float o[R][DVJ], rowMax[R], rowSum[R];
                #pragma unroll
                for (int r = 0; r < R; ++r) {
                    rowMax[r] = fa_negative_infinity();
                    rowSum[r] = 0.0f;
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) o[r][j] = 0.0f;
                }

                const int line = (b * maskBatchStride + h * maskHeadStride) * qBlocks + qBlock;
                const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, (Skv + BN - 1) / BN);
                const int begin = range.begin, end = range.end;
                for (int step = begin; step < end; ++step) {
                    const int entry = fa_block_entry(blockList, step);
                    const int k0 = (entry >> 1) * BN;
                    const bool partial = (entry & 1) != 0;
                    __syncthreads();  // every warp is done with the previous K and V (and Q's stores are visible)
                    fa_load_rows<BN, D, KP>(sK, keys, ks2, ks3, k0, Skv);
                    fa_load_rows<BN, DV, DV>(sV, values, vs2, vs3, k0, Skv);
                    __syncthreads();

                    // s[r] = q · k for key k0 + lane.
                    float s[R];
                    #pragma unroll
                    for (int r = 0; r < R; ++r) s[r] = 0.0f;
                    #pragma unroll 4
                    for (int d = 0; d < D; ++d) {
                        const float k = sK[lane * KP + d];
                        #pragma unroll
                        for (int r = 0; r < R; ++r) s[r] = fmaf(sQ[(row0 + r) * D + d], k, s[r]);
                    }

                    // Mods, mask and the online softmax, in base 2; s[r] becomes this lane's P.
                    const int key = k0 + lane;
                    #pragma unroll
                    for (int r = 0; r < R; ++r) {
                        const int query = q0 + row0 + r;
                        float x = s[r] * scale;
                        \(modifyScore)
                        const bool keep = \(ModKernelText.keep(mask: mask));
                        x = keep ? x * LOG2E : fa_negative_infinity();
                        const float blockMax = fmaxf(rowMax[r], fa_warp_max(x));
                        // A row with nothing kept yet subtracts 0, not -inf, so its exponentials are 0, never NaN.
                        const float reference = fa_softmax_reference(blockMax);
                        const float correction = exp2f(rowMax[r] - reference);
                        rowMax[r] = blockMax;
                        s[r] = exp2f(x - reference);
                        rowSum[r] = rowSum[r] * correction + s[r];
                        #pragma unroll
                        for (int j = 0; j < DVJ; ++j) o[r][j] *= correction;
                    }

                    // O += P V: key t's probabilities come from lane t.
                    #pragma unroll 2
                    for (int t = 0; t < BN; ++t) {
                        float p[R];
                        #pragma unroll
                        for (int r = 0; r < R; ++r) p[r] = __shfl_sync(0xffffffffu, s[r], t);
                        #pragma unroll
                        for (int j = 0; j < DVJ; ++j) {
                            const int c = lane + 32 * j;
                            const float v = c < DV ? sV[t * DV + c] : 0.0f;
                            #pragma unroll
                            for (int r = 0; r < R; ++r) o[r][j] = fmaf(p[r], v, o[r][j]);
                        }
                    }
                }

                #pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float sum = fa_warp_sum(rowSum[r]);
                    const int query = q0 + row0 + r;
                    if (query >= Sq) continue;
                    const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
                    \(storage)* out = O + b * os0 + h * os1 + query * os2;
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) {
                        const int c = lane + 32 * j;
                        if (c < DV) out[c * os3] = \(dtype.cudaFromFloat("o[r][j] * inverse"));
                    }
                    if (lane == 0) {
                        LSE[((long long)b * Hq + h) * Sq + query] =
                            fa_log_sum_exp(rowMax[r], sum);
                    }
                }
            }

            """
    }
}
