/// dQ on CUDA cores in Float32 FMA, for Float32 inputs and head dims the tensor-core kernels do not take.
///
/// Grid `(queryBlocks, B · Hq)`: a CTA keeps one query block (Q, dO, LSE, Delta) in shared memory and walks the
/// forward block list, one 32-key block at a time: it recomputes P and dS (``ScalarBackwardTile``), then
/// `dQ += dS K`, each warp owning the rows it recomputed and each lane columns `lane + 32j`. dQ is summed in key
/// order in registers and written once (contiguous `[B, Hq, Sq, D]`, the inputs' dtype): deterministic. When the
/// score mod reads Float tables it also adds their gradients, into fixed-point sums (``TableGradientSum``), through the mod emitter's
/// `fa_score_mod_table_gradients`. Parameters as in notes/cuda-backward.md; `vectorLoads` is ignored.
struct ScalarQueryGradientKernel: ScalarBackwardKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dQ"] }
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    /// Emitted as `fa_mask`; nil keeps every score (then the kernel gets no block list either).
    let mask: CUDAModFunction?
    /// Emitted as `fa_score_mod`, with `fa_score_mod_table_gradients` when it reads Float tables.
    let scoreMod: CUDAModFunction?

    var name: String {
        ScalarKernelSource.name(
            "fa_scalar_dq", dtype: dtype, headDim: headDim, valueDim: valueDim, mask: mask, scoreMod: scoreMod)
    }

    var source: String {
        ScalarKernelSource.prelude(dtype, mask: mask, scoreMod: scoreMod) + (scoreMod?.tableGradientDefinition ?? "")
            + kernel
    }

    private var kernel: String {
        let tableGradients = computesTableGradients
        return """
            extern "C" __global__ void __launch_bounds__(\(threads))
            \(name)(
                \(signature.declaration)) {
            \(tile.declarations)
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
                constexpr int RW = BM / WARPS;  // rows per warp: w · RW ..< +RW, as in the recomputation
                const int qBlocks = (Sq + BM - 1) / BM;
                const int qBlock = qBlocks - 1 - (int)blockIdx.y;  // later rows see more keys under causal: start them first
                const int b = blockIdx.x / Hq, h = blockIdx.x % Hq, hkv = h / (Hq / Hkv);
                \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                const int q0 = qBlock * BM;
            \(ScalarBackwardTile.loadQueries)
                float dq[RW][DJ];  // columns lane + 32j
                #pragma unroll
                for (int r = 0; r < RW; ++r) {
                    #pragma unroll
                    for (int j = 0; j < DJ; ++j) dq[r][j] = 0.0f;
                }
                \(tableGradients ? "fa_score_mod_table_pending pending = fa_score_mod_table_pending_start();" : "")

                const int line = (b * maskBatchStride + h * maskHeadStride) * qBlocks + qBlock;
                const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, (Skv + BN - 1) / BN);
                const int begin = range.begin, end = range.end;
                for (int step = begin; step < end; ++step) {
                    const int entry = fa_block_entry(blockList, step);
                    const int k0 = (entry >> 1) * BN;
                    const bool partial = (entry & 1) != 0;
                    __syncthreads();  // every warp is done with the previous K and dS
            \(ScalarBackwardTile.loadKeys)
                    __syncthreads();  // K and V (and, the first time, the query tiles) are visible
            \(ScalarBackwardTile.scores(mask: mask, scoreMod: scoreMod, tableGradients: tableGradients))
                    __syncthreads();  // dS is visible

                    // dQ += dS K over the block's keys.
                    for (int t = 0; t < BN; ++t) {
                        float ds[RW];
                        #pragma unroll
                        for (int r = 0; r < RW; ++r) ds[r] = sDS[(warp * RW + r) * BN + t];
                        #pragma unroll
                        for (int j = 0; j < DJ; ++j) {
                            const int c = lane + 32 * j;
                            const float k = c < D ? sK[t * KP + c] : 0.0f;
                            #pragma unroll
                            for (int r = 0; r < RW; ++r) dq[r][j] = fmaf(ds[r], k, dq[r][j]);
                        }
                    }
                }
                \(tableGradients ? "fa_score_mod_table_gradients_flush(table_gradients, pending);" : "")

                #pragma unroll
                for (int r = 0; r < RW; ++r) {
                    const int query = q0 + warp * RW + r;
                    if (query >= Sq) continue;
                    const long long row = ((long long)b * Hq + h) * Sq + query;
                    #pragma unroll
                    for (int j = 0; j < DJ; ++j) {
                        const int c = lane + 32 * j;
                        if (c < D) dQ[row * D + c] = \(dtype.cudaFromFloat("dq[r][j]"));
                    }
                }
            }

            """
    }
}
