/// Device code shared by the attention kernels that stage 16-bit tiles in shared memory.
enum SharedTileLoader {
    /// Starts copying rows `first ..< first + ROWS` of a strided `[rows, COLS]` matrix into a padded shared tile:
    /// 16-byte `cp.async` copies that the caller commits and waits for, or element-wise loads and stores when
    /// rows are not vector-loadable; rows past `count` are stored as zeros.
    static let source = """
        struct __align__(16) fa_u128 { fa_u32 x, y, z, w; };
        template <int ROWS, int COLS>
        FA_INLINE void fa_load_tile(fa_u16* tile, const fa_u16* base, long long rowStride, long long colStride,
                                    int first, int count, int vectorLoads) {
            constexpr int CHUNKS = COLS / 8;
            for (int i = threadIdx.x; i < ROWS * CHUNKS; i += blockDim.x) {
                const int r = i / CHUNKS, c = (i % CHUNKS) * 8;
                fa_u16* target = tile + r * (COLS + 8) + c;
                const int row = first + r;
                if (row >= count) {
                    *(fa_u128*)target = fa_u128{0, 0, 0, 0};
                } else if (vectorLoads) {
                    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                                 :: "r"((fa_u32)__cvta_generic_to_shared(target)), "l"(base + row * rowStride + c)
                                 : "memory");
                } else {
                    const fa_u16* source = base + row * rowStride + c * colStride;
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) target[j] = source[j * colStride];
                }
            }
        }
        FA_INLINE void fa_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
        template <int PENDING>
        FA_INLINE void fa_cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(PENDING) : "memory"); }

        """
}
