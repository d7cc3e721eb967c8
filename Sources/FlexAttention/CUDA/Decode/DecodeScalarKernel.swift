/// Decode attention on CUDA cores in Float32 FMA: Float32 caches at Float32 accuracy, and head dims the tensor-core
/// ``DecodeMMAKernel`` does not take, for every dtype.
///
/// A CTA of 4 warps owns up to 32 packed rows (``rowsPerWarp`` per warp) of one (sequence, KV head, split) and walks
/// the split's 32-key blocks with K and V staged in shared memory as Float32 (K at an odd pitch, since each lane
/// reads one key's row). Each warp keeps its rows' whole online softmax: a lane scores one key against the warp's
/// rows, and accumulates output columns `lane + 32j` with the probabilities broadcast by shuffles, so no merge
/// between warps is needed. Blocks, the mask test, lengths and outputs are as in ``DecodeMMAKernel``; the loads are
/// synchronous and element-wise (`vectorLoads` is ignored).
struct DecodeScalarKernel: DecodeAttentionKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    let isPaged: Bool
    /// Packed rows per warp, 1 to 8: enough for `rows` packed rows (more take more CTAs).
    let rowsPerWarp: Int

    init(dtype: DType, headDim: Int, valueDim: Int, rows: Int, isPaged: Bool, mask: CUDAModFunction?,
         scoreMod: CUDAModFunction?) {
        (self.dtype, self.headDim, self.valueDim, self.isPaged) = (dtype, headDim, valueDim, isPaged)
        (self.mask, self.scoreMod) = (mask, scoreMod)
        rowsPerWarp = min(8, max(1, (rows + 3) / 4))
    }

    var rowsPerTile: Int { 4 * rowsPerWarp }
    var keyBlock: Int { 32 }
    var threads: Int { 128 }

    var name: String { kernelName("fa_decode_scalar") }

    /// Dynamic shared memory: Q `[R][D]`, K `[32][D | 1]` and V `[32][Dv]` as floats.
    var sharedMemoryBytes: Int {
        4 * (rowsPerTile * headDim + keyBlock * (headDim | 1) + keyBlock * valueDim)
    }

    /// The largest head dim (D = Dv) whose kernel, with this one's rows and mods, fits `bytes` of shared memory.
    func largestHeadDim(sharedMemory bytes: Int) -> Int {
        (1...4096).last {
            DecodeScalarKernel(dtype: dtype, headDim: $0, valueDim: $0, rows: rowsPerTile, isPaged: isPaged, mask: mask,
                               scoreMod: scoreMod).sharedMemoryBytes <= bytes
        } ?? 0
    }

    var source: String {
        ScalarKernelSource.prelude(dtype, mask: mask, scoreMod: scoreMod) + DecodeKernelText.helpers(dtype) + kernel
    }

    private var kernel: String {
        let masked = DecodeKernelText.maskedKeep(row: "warp + 4 * r", key: "key")
        return """
            extern "C" __global__ void __launch_bounds__(\(threads))
            \(name)(
                \(signature.declaration)) {
                constexpr int D = \(headDim), DV = \(valueDim), RW = \(rowsPerWarp), R = 4 * RW, BN = 32, THREADS = \(threads);
                constexpr int KP = D | 1, DVJ = (DV + 31) / 32;  // K's pitch; output columns per lane
                constexpr bool PAGED = \(isPaged);
                constexpr float LOG2E = 1.4426950408889634f;
                const float scaleLog2 = scale * LOG2E;
                extern __shared__ float shared[];
                float* const sQ = shared;          // [R][D]; the warp's rows are warp + 4r
                float* const sK = sQ + R * D;      // [BN][KP]
                float* const sV = sK + BN * KP;    // [BN][DV]
                (void)vectorLoads;
                \(DecodeKernelText.indices(rowsPerTile: rowsPerTile, mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                fa_decode_load_query<R, D, D, THREADS>(sQ, Q, qs0, qs1, qs2, qs3, b, hkv, group, Sq, row0, rows);
                \(preparedRows(count: rowsPerWarp, rowOf: "warp + 4 * i"))
                float o[RW][DVJ], rowMax[RW], rowSum[RW];  // rowMax in base 2; rowSum this lane's part
                #pragma unroll
                for (int r = 0; r < RW; ++r) {
                    rowMax[r] = fa_negative_infinity();
                    rowSum[r] = 0.0f;
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) o[r][j] = 0.0f;
                }
                \(DecodeKernelText.maskTables(rowsPerTile: rowsPerTile, mask: mask))
                \(DecodeKernelText.blockSelection(rowsPerTile: rowsPerTile, mask: mask))
                for (int entry = nextBlock(); entry >= 0; entry = nextBlock()) {
                    const int block = entry >> 1;
                    const bool partial = (entry & 1) != 0;
                    (void)partial;
                    __syncthreads();  // every warp is done with the last block's tiles (and Q is visible)
                    fa_decode_load_floats<BN, D, KP, THREADS, PAGED>(
                        sK, keyBase, ks0, keySlotStride, ks3, table, pageSize, pageMagic, block * BN, L);
                    fa_decode_load_floats<BN, DV, DV, THREADS, PAGED>(
                        sV, valueBase, vs0, valueSlotStride, vs3, table, pageSize, pageMagic, block * BN, L);
                    __syncthreads();

                    // s[r] = q · k for key block * BN + lane.
                    const int key = block * BN + lane;
                    float s[RW];
                    #pragma unroll
                    for (int r = 0; r < RW; ++r) s[r] = 0.0f;
                    #pragma unroll 4
                    for (int d = 0; d < D; ++d) {
                        const float k = sK[lane * KP + d];
                        #pragma unroll
                        for (int r = 0; r < RW; ++r) s[r] = fmaf(sQ[(warp + 4 * r) * D + d], k, s[r]);
                    }

                    // Mods, the length and (in blocks it keeps in part) the mask, and the online softmax, in base 2;
                    // s[r] becomes P.
                    #pragma unroll
                    for (int r = 0; r < RW; ++r) {
                        float x = \(DecodeKernelText.score(
                            "s[r]", scoreMod: scoreMod, head: "rowHead[r]", position: "rowPosition[r]", key: "key",
                            prepared: "scorePrepared[r]"));
                        const bool keep = \(ModKernelText.keep(bound: "key < L", masked: mask == nil ? nil : masked));
                        x = keep ? x : fa_negative_infinity();
                        const float blockMax = fmaxf(rowMax[r], fa_warp_max(x));
                        // A row with nothing kept yet subtracts 0, not -inf, so its exponentials are 0, never NaN.
                        const float reference = fa_softmax_reference(blockMax);
                        const float correction = exp2f(rowMax[r] - reference);
                        rowMax[r] = blockMax;
                        s[r] = exp2f(x - reference);
                        rowSum[r] = rowSum[r] * correction + s[r];
                        #pragma unroll
                        if (correction != 1.0f)  // the maximum moved: rescale (rarely, once the row has settled)
                            for (int j = 0; j < DVJ; ++j) o[r][j] *= correction;
                    }

                    // O += P V: key t's probabilities come from lane t.
                    #pragma unroll 2
                    for (int t = 0; t < BN; ++t) {
                        float p[RW];
                        #pragma unroll
                        for (int r = 0; r < RW; ++r) p[r] = __shfl_sync(0xffffffffu, s[r], t);
                        #pragma unroll
                        for (int j = 0; j < DVJ; ++j) {
                            const int c = lane + 32 * j;
                            const float v = c < DV ? sV[t * DV + c] : 0.0f;
                            #pragma unroll
                            for (int r = 0; r < RW; ++r) o[r][j] = fmaf(p[r], v, o[r][j]);
                        }
                    }
                }

                \(DecodeKernelText.store(dtype))
                #pragma unroll
                for (int r = 0; r < RW; ++r) {
                    const float sum = fa_warp_sum(rowSum[r]);
                    const int rho = row0 + warp + 4 * r;
                    if (rho >= rows) continue;
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) {
                        const int c = lane + 32 * j;
                        if (c < DV) store(rho, c, rowMax[r], sum, o[r][j]);
                    }
                }
            }

            """
    }
}
