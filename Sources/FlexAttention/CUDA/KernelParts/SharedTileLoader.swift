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

    /// The walk over one query block's key blocks that the forward and dQ kernels share, up to the start of a step's
    /// work: the block list's line of `queryBlock` (of `queryBlocks`), K and V prefetched `AHEAD` steps ahead into
    /// the ring of `sKV` stages (one commit group per step, empty past the end, so that waiting for all but the
    /// `AHEAD` newest groups means this step's tiles have landed), and per step `k0`, `partial`, `sK`, `sV`. The
    /// caller closes the loop's brace.
    static func keyBlockLoop(queryBlocks: String, queryBlock: String) -> String {
        [
            "const int line = (b * maskBatchStride + h * maskHeadStride) * \(queryBlocks) + \(queryBlock);",
            "const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, (Skv + 63) / 64);",
            "const int begin = range.begin, end = range.end;",
            "const auto entryAt = [&](int step) { return fa_block_entry(blockList, step); };",
            "const auto prefetch = [&](int step) {",
            "    if (step < end) {",
            "        const int k0 = (entryAt(step) >> 1) * 64;",
            "        fa_u16* stage = sKV + (step - begin) % (AHEAD + 1) * STAGE;",
            "        fa_load_tile<64, D>(stage, keys, ks2, ks3, k0, Skv, vectorLoads);",
            "        fa_load_tile<64, DV>(stage + 64 * DP, values, vs2, vs3, k0, Skv, vectorLoads);",
            "    }",
            "    fa_cp_async_commit();",
            "};",
            "for (int step = begin; step < begin + AHEAD; ++step) prefetch(step);  // the resident tiles join the first group",
            "for (int step = begin; step < end; ++step) {",
            "    const int entry = entryAt(step);",
            "    const int k0 = (entry >> 1) * 64;",
            "    const bool partial = (entry & 1) != 0;",
            "    const fa_u16* sK = sKV + (step - begin) % (AHEAD + 1) * STAGE;",
            "    const fa_u16* sV = sK + 64 * DP;",
            "    __syncthreads();  // every warp is done with the stage the prefetch below overwrites",
            "    prefetch(step + AHEAD);",
            "    fa_cp_async_wait<AHEAD>();",
            "    __syncthreads();  // every thread's copies of this step's tiles (and the resident ones) are visible",
        ].joined(separator: "\n    ")
    }
}
