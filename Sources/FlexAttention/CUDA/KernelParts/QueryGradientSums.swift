/// dQ summed in Float32 across key blocks by the one-pass Hopper backward (``HopperBackwardKernel``), then
/// rounded to the inputs' dtype by ``QueryGradientFinishKernel``: the one definition of its layout and of how the
/// additions are ordered.
///
/// Per (b, h) and block of ``rows`` queries, one tile of `rows × 64` floats per 64-column block of D (padded); in a
/// tile, the 8-float chunk `j` of row `r` sits at chunk `j ^ (r % 8)`, so the consumers' stores of accumulator pairs
/// into the shared tile that is copied out whole meet no bank conflicts. After the tiles, one Int32 turn counter per
/// (b, h, block): how many key blocks have added their part. A key block adds when the counter equals its turn
/// (its rank among the block's key blocks, highest key block first), so every sum is made in one order and the
/// bits are the same on every run. The first key block stores, so the tiles need no zeroing; a block nobody
/// adds to is zero. The counter's final value is the block's number of adders, which the finish waits for. In any
/// order (``HopperBackwardKernel/ordersQueryGradient`` false) every key block adds, to tiles zeroed beforehand, and
/// the counter only counts the additions.
enum QueryGradientSums {
    /// Query rows per tile (the dK/dV kernel's query block).
    static let rows = 64
    /// Floats per tile: `rows` rows of one 64-column block.
    static let tileFloats = rows * 64

    static func queryBlocks(queryLength: Int) -> Int { (queryLength + rows - 1) / rows }

    /// Tiles per query block: D's 64-column blocks, D padded as the kernels' tiles are.
    static func columnBlocks(headDim: Int) -> Int { (headDim + 63) / 64 }

    /// Floats of the tiles for a (batch, heads, queryLength, headDim) problem.
    static func floatCount(batch: Int, heads: Int, queryLength: Int, headDim: Int) -> Int {
        batch * heads * queryBlocks(queryLength: queryLength) * columnBlocks(headDim: headDim) * tileFloats
    }

    /// The tiles and the turn counters, in bytes; the counters start at byte ``turnsOffset(batch:heads:queryLength:headDim:)``.
    static func byteCount(batch: Int, heads: Int, queryLength: Int, headDim: Int) -> Int {
        turnsOffset(batch: batch, heads: heads, queryLength: queryLength, headDim: headDim)
            + 4 * batch * heads * queryBlocks(queryLength: queryLength)
    }

    static func turnsOffset(batch: Int, heads: Int, queryLength: Int, headDim: Int) -> Int {
        4 * floatCount(batch: batch, heads: heads, queryLength: queryLength, headDim: headDim)
    }

    /// `fa_dq_sums_index(row, column)`: the float at (row, column) of a tile, for both kernels.
    static let indexFunction = """
        // The float at (row, column) of a dQ sums tile (QueryGradientSums): 8-float chunks swizzled by row.
        FA_INLINE int fa_dq_sums_index(int row, int column) {
            return row * 64 + ((((column >> 3) ^ row) & 7) << 3) + (column & 7);
        }

        """

    /// The turn counters' wait and hand-on (sm_90), which order the asynchronous bulk additions (async proxy) with
    /// the counter (generic proxy).
    static let turnFunctions = """
        // Spins until the counter reaches `turn`, pausing 64 ns between reads, doubling up to `longestPause` (waits off
        // the critical path read less often); what earlier turns added is then visible to bulk copies.
        FA_INLINE void fa_await_turn(const int* counter, int turn, unsigned longestPause = 64) {
            int seen;
            for (unsigned pause = 64; ; pause = min(2 * pause, longestPause)) {
                asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
                if (seen == turn) break;
                __nanosleep(pause);
            }
            asm volatile("fence.proxy.async.global;" ::: "memory");
        }
        // Passes the turn on, after this thread's bulk copies have completed (cp.async.bulk.wait_group 0).
        FA_INLINE void fa_pass_turn(int* counter) {
            asm volatile("fence.proxy.async.global;" ::: "memory");
            asm volatile("red.release.gpu.global.add.s32 [%0], 1;" :: "l"(counter) : "memory");
        }

        """
}
