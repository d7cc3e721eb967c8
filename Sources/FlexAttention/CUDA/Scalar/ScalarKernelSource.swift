/// The source pieces the CUDA-core kernels share: device helpers, the mods' definitions, and names.
///
/// The kernels stage tiles in shared memory as Float32 whatever the dtype, so everything after the load is
/// Float32 FMA; rows in shared memory are `PITCH` floats apart, an odd pitch where a warp reads one row per lane
/// (lane `j` at column `d` then hits bank `(j · PITCH + d) mod 32`, all different).
enum ScalarKernelSource {
    /// The prelude, the row loader for `dtype`, warp reductions and the mods' definitions.
    static func prelude(_ dtype: DType, mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        CUDAPrelude.source + CUDAModPrelude.source + helpers(dtype) + (mask?.definition ?? "")
            + (scoreMod?.definition ?? "")
    }

    private static func helpers(_ dtype: DType) -> String {
        """
        // Copies rows first ..< first + ROWS of a strided [rows, COLS] matrix into shared floats PITCH apart; rows
        // at or past count become zeros. Consecutive threads take consecutive columns (coalesced when they are).
        template <int ROWS, int COLS, int PITCH>
        FA_INLINE void fa_load_rows(float* tile, const \(dtype.cudaStorageType)* base, long long rowStride,
                                    long long colStride, int first, int count) {
            for (int i = threadIdx.x; i < ROWS * COLS; i += blockDim.x) {
                const int r = i / COLS, c = i % COLS, row = first + r;
                tile[r * PITCH + c] = row < count ? \(dtype.cudaToFloat("base[row * rowStride + c * colStride]")) : 0.0f;
            }
        }
        FA_INLINE float fa_warp_max(float x) {
            #pragma unroll
            for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
            return x;
        }
        FA_INLINE float fa_warp_sum(float x) {
            #pragma unroll
            for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
            return x;
        }

        """
    }

    /// `prefix_dtype_dD_dvDv`, then a hash of each mod's definition: one name per source.
    static func name(
        _ prefix: String, dtype: DType, headDim: Int, valueDim: Int, mask: CUDAModFunction?, scoreMod: CUDAModFunction?
    ) -> String {
        "\(prefix)_\(dtype)_d\(headDim)_dv\(valueDim)" + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }
}
