/// dK and dV on CUDA cores in Float32 FMA, for Float32 inputs and head dims the tensor-core kernels do not take.
///
/// Grid `(keyBlocks, B · Hkv)`: a CTA keeps one 32-key block of one kv head in shared memory and, for each query
/// head of its group in order, walks that head's transposed block list (query blocks of its key block): it
/// recomputes P and dS (``ScalarBackwardTile``), then `dV += Pᵀ dO` and `dK += dSᵀ Q`, each warp owning
/// `32 / warps` keys and each lane columns `lane + 32j`. dK and dV are summed in a fixed order in registers and
/// written once (contiguous `[B, Hkv, Skv, D | Dv]`, the inputs' dtype): deterministic, no atomics. Parameters
/// as in notes/cuda-backward.md; `vectorLoads` is ignored.
struct ScalarKeyValueGradientKernel: ScalarBackwardKernel, GradientAttentionKernel {
    var gradientNames: [String] { ["dK", "dV"] }
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    /// Emitted as `fa_mask`; nil keeps every score (then the kernel gets no block list either).
    let mask: CUDAModFunction?
    /// Emitted as `fa_score_mod`.
    let scoreMod: CUDAModFunction?

    var name: String {
        ScalarKernelSource.name(
            "fa_scalar_dkdv", dtype: dtype, headDim: headDim, valueDim: valueDim, mask: mask, scoreMod: scoreMod)
    }

    var source: String { ScalarKernelSource.prelude(dtype, mask: mask, scoreMod: scoreMod) + kernel }

    private var kernel: String {
        return """
            extern "C" __global__ void __launch_bounds__(\(threads))
            \(name)(
                \(signature.declaration)) {
            \(tile.declarations)
                \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
                constexpr int KW = BN / WARPS;  // keys per warp: w · KW ..< +KW
                const int keyBlock = blockIdx.y, keyBlocks = (Skv + BN - 1) / BN, qBlocks = (Sq + BM - 1) / BM;
                const int b = blockIdx.x / Hkv, hkv = blockIdx.x % Hkv, group = Hq / Hkv;
                const int k0 = keyBlock * BN;
            \(ScalarBackwardTile.loadKeys)
                float dk[KW][DJ], dv[KW][DVJ];  // columns lane + 32j
                #pragma unroll
                for (int jj = 0; jj < KW; ++jj) {
                    #pragma unroll
                    for (int j = 0; j < DJ; ++j) dk[jj][j] = 0.0f;
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) dv[jj][j] = 0.0f;
                }

                for (int g = 0; g < group; ++g) {
                    const int h = hkv * group + g;
                    \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
                    const int line = (b * maskBatchStride + h * maskHeadStride) * keyBlocks + keyBlock;
                    const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, qBlocks);
                    const int begin = range.begin, end = range.end;
                    for (int step = begin; step < end; ++step) {
                        const int entry = fa_block_entry(blockList, step);
                        const int q0 = (entry >> 1) * BM;
                        const bool partial = (entry & 1) != 0;
                        __syncthreads();  // every warp is done with the previous query block's tiles
            \(ScalarBackwardTile.loadQueries)
                        __syncthreads();  // these tiles (and, the first time, K and V) are visible
            \(ScalarBackwardTile.scores(mask: mask, scoreMod: scoreMod, tableGradients: false))
                        __syncthreads();  // every warp's P and dS rows are visible

                        // dV += Pᵀ dO, dK += dSᵀ Q over the block's rows.
                        for (int i = 0; i < BM; ++i) {
                            float p[KW], ds[KW];
                            #pragma unroll
                            for (int jj = 0; jj < KW; ++jj) {
                                p[jj] = sP[i * BN + warp * KW + jj];
                                ds[jj] = sDS[i * BN + warp * KW + jj];
                            }
                            #pragma unroll
                            for (int j = 0; j < DJ; ++j) {
                                const int c = lane + 32 * j;
                                const float q = c < D ? sQ[i * D + c] : 0.0f;
                                #pragma unroll
                                for (int jj = 0; jj < KW; ++jj) dk[jj][j] = fmaf(ds[jj], q, dk[jj][j]);
                            }
                            #pragma unroll
                            for (int j = 0; j < DVJ; ++j) {
                                const int c = lane + 32 * j;
                                const float o = c < DV ? sdO[i * DV + c] : 0.0f;
                                #pragma unroll
                                for (int jj = 0; jj < KW; ++jj) dv[jj][j] = fmaf(p[jj], o, dv[jj][j]);
                            }
                        }
                    }
                }

                #pragma unroll
                for (int jj = 0; jj < KW; ++jj) {
                    const int key = k0 + warp * KW + jj;
                    if (key >= Skv) continue;
                    const long long row = ((long long)b * Hkv + hkv) * Skv + key;
                    #pragma unroll
                    for (int j = 0; j < DJ; ++j) {
                        const int c = lane + 32 * j;
                        if (c < D) dK[row * D + c] = \(dtype.cudaFromFloat("dk[jj][j]"));
                    }
                    #pragma unroll
                    for (int j = 0; j < DVJ; ++j) {
                        const int c = lane + 32 * j;
                        if (c < DV) dV[row * DV + c] = \(dtype.cudaFromFloat("dv[jj][j]"));
                    }
                }
            }

            """
    }
}
