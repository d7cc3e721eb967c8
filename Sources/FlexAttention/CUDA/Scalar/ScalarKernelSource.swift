/// The source pieces the CUDA-core kernels share: device helpers, the mods' definitions and parameters, and names.
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

    /// The mods' kernel parameters, in the order every attention kernel takes them: the mask's three, then the
    /// score mod's three and, with `tableGradients`, its gradient table pointers (see notes/cuda-backward.md).
    static func modParameters(mask: CUDAModFunction?, scoreMod: CUDAModFunction?, tableGradients: Bool = false) -> String {
        (mask == nil ? "" : ",\n    const long long* mask_ints, const float* mask_floats, const fa_u64* mask_tables")
            + (scoreMod == nil ? "" : ",\n    const long long* score_ints, const float* score_floats, const fa_u64* score_tables")
            + (scoreMod == nil || !tableGradients ? "" : ", const fa_u64* score_table_gradients")
    }

    /// Declarations of `mask_mod` and `score_mod` from those parameters.
    static func modArguments(mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        (mask == nil ? "" : "const fa_mod_arguments mask_mod = {mask_ints, mask_floats, mask_tables};\n")
            + (scoreMod == nil ? "" : "const fa_mod_arguments score_mod = {score_ints, score_floats, score_tables};\n")
    }

    /// `prefix_dtype_dD_dvDv`, then a hash of each mod's definition: one name per source.
    static func name(
        _ prefix: String, dtype: DType, headDim: Int, valueDim: Int, mask: CUDAModFunction?, scoreMod: CUDAModFunction?
    ) -> String {
        func tag(_ mod: CUDAModFunction?, _ letter: String) -> String {
            mod.map { "_\(letter)" + hexString(SHA256.hash(Array($0.definition.utf8))).prefix(12) } ?? ""
        }
        return "\(prefix)_\(dtype)_d\(headDim)_dv\(valueDim)" + tag(mask, "m") + tag(scoreMod, "s")
    }
}
