/// Device helpers for Hopper's asynchronous units (sm_90a): `mbarrier`s, tensor-memory-accelerator (TMA) tile
/// copies, and warpgroup matrix products (`wgmma`) with operands in 128-byte-swizzled shared memory.
///
/// Shared tiles use one layout throughout: a `[rows, cols]` tile of 16-bit elements is cut into column blocks of
/// 64 elements (128 bytes per row); a column block is `rows × 128` contiguous bytes, and within each group of 8
/// rows the 16-byte chunk `c` of row `r` sits at chunk `c ^ (r % 8)`. This is what a TMA copy with
/// `CU_TENSOR_MAP_SWIZZLE_128B` and a `[64, rows]` box writes, and what `wgmma` reads through a descriptor with
/// 128-byte swizzling, both as a K-major operand (rows are M or N, columns K) and as an MN-major one (rows are K).
/// Every column block starts on a 1024-byte boundary, so descriptors need no base offset.
enum HopperHelpers {
    static func source(_ dtype: DType, wgmmaShapes: [WGMMAShape]) -> String {
        fixed + Set(wgmmaShapes).sorted { ($0.n, $0.operands) < ($1.n, $1.operands) }
            .map { $0.source(TensorCoreHelpers.ptxType(dtype)) }.joined()
    }

    /// The loop that issues `accumulator = A Bᵀ` over `depth` columns (a C expression) with `fa_wgmma_ss_N`: A's 64
    /// rows at `a` in a tile of `aRows` rows, B's N rows at `b` in a tile of `bRows`, both K-major; 16 columns per
    /// wgmma, 4 per 64-column block, 32 bytes apart in a swizzled row.
    static func kMajorProducts(
        n: Int, accumulator: String, a: String, aRows: String, b: String, bRows: String, depth: String
    ) -> String {
        """
        #pragma unroll
        for (int kk = 0; kk < \(depth) / 16; ++kk)
            fa_wgmma_ss_\(n)(\(accumulator), fa_wgmma_descriptor(\(a) + kk / 4 * \(aRows) * 128 + kk % 4 * 32, 16, 1024),
                             fa_wgmma_descriptor(\(b) + kk / 4 * \(bRows) * 128 + kk % 4 * 32, 16, 1024), kk);
        """
    }

    /// The loop that issues `accumulator += A B` over `depth` rows of B with `fa_wgmma_rs_N`: A in registers,
    /// `operands[kk]` per 16 rows; B MN-major at `b`, a tile of `rows` rows whose 64-column blocks are
    /// `rows · 128` bytes apart.
    static func mnMajorProducts(n: Int, accumulator: String, operands: String, b: String, rows: String, depth: String) -> String {
        """
        #pragma unroll
        for (int kk = 0; kk < \(depth) / 16; ++kk)
            fa_wgmma_rs_\(n)(\(accumulator), \(operands)[kk], fa_wgmma_descriptor(\(b) + kk * 16 * 128, \(rows) * 128, 1024));
        """
    }

    /// The loop that issues `accumulator = A Bᵀ` over `depth` columns with `fa_wgmma_rk_N`: A in registers,
    /// `operands[kk]` per 16 columns (``residentOperands``); B's N rows at `b` in a tile of `bRows` rows, K-major.
    static func registerKMajorProducts(n: Int, accumulator: String, operands: String, b: String, bRows: String, depth: String) -> String {
        """
        #pragma unroll
        for (int kk = 0; kk < \(depth) / 16; ++kk)
            fa_wgmma_rk_\(n)(\(accumulator), \(operands)[kk], fa_wgmma_descriptor(\(b) + kk / 4 * \(bRows) * 128 + kk % 4 * 32, 16, 1024), kk);
        """
    }

    /// The byte offset, in a tile of this layout, of this thread's 32 bits of an A operand's row `row` and 16-byte
    /// chunk `chunk` (C variables): where the packed registers of `fa_pack_operands` are stored and loaded.
    static let operandOffset = "row * 128 + (chunk ^ (row % 8)) * 16 + 4 * (lane % 4)"

    /// `fa_u32 name[columns / 16][4]`, this thread's A operands of a product over `columns` columns (a C constant)
    /// read once from the shared tile at `tile` (`rows` rows; this warp's 16 at `16 * warp`): the layout
    /// `fa_pack_operands` gives, so a tile that stays resident is read from shared memory once instead of per product.
    static func residentOperands(_ name: String, tile: String, rows: String, columns: String) -> String {
        """
        fa_u32 \(name)[\(columns) / 16][4];
        #pragma unroll
        for (int kk = 0; kk < \(columns) / 16; ++kk) {
            #pragma unroll
            for (int a = 0; a < 4; ++a) {
                const int row = 16 * warp + lane / 4 + 8 * (a % 2), chunk = 2 * (kk % 4) + a / 2;
                \(name)[kk][a] = *(const fa_u32*)(\(tile) + kk / 4 * \(rows) * 128 + \(operandOffset));
            }
        }
        """
    }

    /// `if (needsChecks)` the loop `loop(true)`, which checks bounds and the mask per score, else `loop(false)`: blocks
    /// the mask keeps whole and that end inside the keys run without the checks.
    static func checkedOrNot(_ needsChecks: String, _ loop: (Bool) -> String) -> String {
        """
        if (\(needsChecks)) {
            \(loop(true))
        } else {
            \(loop(false))
        }
        """
    }

    /// `fa_wgmma_fence`, the product loops `first` and `second` into `accumulators`, one commit and the wait for
    /// both; issued in this warpgroup's turn (``WarpgroupTurns``).
    static func productPair(_ first: String, _ second: String, accumulators: (String, String)) -> String {
        """
        awaitTurn();
        fa_wgmma_fence();
        \(first)
        \(second)
        fa_wgmma_commit();
        passTurn();
        fa_wgmma_wait<0>();
        fa_wgmma_pin(\(accumulators.0));
        fa_wgmma_pin(\(accumulators.1));
        """
    }

    /// A loop storing row `r` (0 or 1) of this thread's accumulator rows, `accumulator[columns / 8][4]` times `factor`,
    /// into the contiguous 16-bit row at `row`: its two adjacent columns in one 32-bit store.
    static func storeRow(_ accumulator: String, r: String, columns: String, times factor: String, at row: String) -> String {
        """
        #pragma unroll
        for (int j = 0; j < \(columns) / 8; ++j)
            *(fa_u32*)(\(row) + 8 * j + 2 * (lane % 4)) = fa_pack(\(accumulator)[j][2 * \(r)] * \(factor), \(accumulator)[j][2 * \(r) + 1] * \(factor));
        """
    }

    private static let fixed = """
        struct __align__(64) fa_tensor_map { fa_u64 words[16]; };  // a CUtensorMap, passed by value
        FA_INLINE fa_u32 fa_shared_address(const void* pointer) { return (fa_u32)__cvta_generic_to_shared(pointer); }

        FA_INLINE void fa_mbarrier_init(fa_u64* barrier, int count) {
            asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(fa_shared_address(barrier)), "r"(count) : "memory");
        }
        // Arrives once and tells the barrier to wait for `bytes` more from asynchronous copies.
        FA_INLINE void fa_mbarrier_expect_bytes(fa_u64* barrier, int bytes) {
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                         :: "r"(fa_shared_address(barrier)), "r"(bytes) : "memory");
        }
        FA_INLINE void fa_mbarrier_arrive(fa_u64* barrier) {
            asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(fa_shared_address(barrier)) : "memory");
        }
        // Waits until the barrier's phase of this parity has completed (a new barrier counts parity 1 as completed).
        FA_INLINE void fa_mbarrier_wait(fa_u64* barrier, int parity) {
            fa_u32 done;
            do {
                asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                             : "=r"(done) : "r"(fa_shared_address(barrier)), "r"(parity) : "memory");
            } while (!done);
        }
        // Named barriers 1...15 (0 is __syncthreads): `sync` waits until `threads` have arrived, `arrive` counts
        // this warp's lanes without waiting.
        FA_INLINE void fa_named_barrier_sync(int id, int threads) {
            asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(threads) : "memory");
        }
        FA_INLINE void fa_named_barrier_arrive(int id, int threads) {
            asm volatile("bar.arrive %0, %1;" :: "r"(id), "r"(threads) : "memory");
        }
        // Copies the box at coordinates (c0 innermost .. c3) of a 4-D tensor map into shared memory; the barrier
        // counts its bytes (elements outside the tensor arrive as zeros).
        FA_INLINE void fa_tma_load(void* target, const fa_tensor_map* map, int c0, int c1, int c2, int c3, fa_u64* barrier) {
            asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
                         :: "r"(fa_shared_address(target)), "l"((fa_u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3),
                            "r"(fa_shared_address(barrier)) : "memory");
        }

        // Copies `bytes` contiguous bytes (a multiple of 16, both ends 16-byte aligned) into shared memory; the
        // barrier counts them. Like TMA it writes through the async proxy.
        FA_INLINE void fa_bulk_load(void* target, const void* source, int bytes, fa_u64* barrier) {
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                         :: "r"(fa_shared_address(target)), "l"((fa_u64)source), "r"(bytes),
                            "r"(fa_shared_address(barrier)) : "memory");
        }

        // Copies `bytes` (a multiple of 16, both ends 16-byte aligned) from shared to global memory, or adds them
        // there as floats, in this thread's bulk group: fa_bulk_commit closes it, fa_bulk_wait_read waits until the
        // shared bytes have been read, fa_bulk_wait until the global writes are done.
        FA_INLINE void fa_bulk_store(void* target, const void* source, int bytes) {
            asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;"
                         :: "l"((fa_u64)target), "r"(fa_shared_address(source)), "r"(bytes) : "memory");
        }
        FA_INLINE void fa_bulk_reduce_add(float* target, const void* source, int bytes) {
            asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;"
                         :: "l"((fa_u64)target), "r"(fa_shared_address(source)), "r"(bytes) : "memory");
        }
        FA_INLINE void fa_bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
        FA_INLINE void fa_bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }
        FA_INLINE void fa_bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }
        // Makes this thread's ordinary writes to shared memory visible to the async proxy (wgmma, bulk copies).
        FA_INLINE void fa_fence_shared_for_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

        // A wgmma operand descriptor for a 128-byte-swizzled tile (see HopperHelpers): `leading` and `stride` in bytes.
        FA_INLINE fa_u64 fa_wgmma_descriptor(const void* start, fa_u32 leading, fa_u32 stride) {
            return (fa_u64)((fa_shared_address(start) & 0x3FFFF) >> 4) | (fa_u64)(leading >> 4) << 16
                | (fa_u64)(stride >> 4) << 32 | 1ull << 62;
        }
        FA_INLINE void fa_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
        FA_INLINE void fa_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
        // Waits until at most N of this warpgroup's commit groups are still running (they finish in order).
        template <int N>
        FA_INLINE void fa_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }
        // Accumulators (the m16n8 layout, J tiles of 8 columns) rounded to 16 bits as J / 2 A operands of 16 columns.
        template <int J>
        FA_INLINE void fa_pack_operands(const float (&s)[J][4], fa_u32 (&a)[J / 2][4]) {
            #pragma unroll
            for (int k = 0; k < J / 2; ++k) {
                a[k][0] = fa_pack(s[2 * k][0], s[2 * k][1]);
                a[k][1] = fa_pack(s[2 * k][2], s[2 * k][3]);
                a[k][2] = fa_pack(s[2 * k + 1][0], s[2 * k + 1][1]);
                a[k][3] = fa_pack(s[2 * k + 1][2], s[2 * k + 1][3]);
            }
        }
        // Keeps the compiler from moving reads or writes of accumulators across an asynchronous wgmma.
        template <int N>
        FA_INLINE void fa_wgmma_pin(float (&d)[N][4]) {
            #pragma unroll
            for (int j = 0; j < N; ++j)
                asm volatile("" : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3]) :: "memory");
        }

        """
}

/// One `wgmma.mma_async` form a kernel uses: `m64nNk16` with Float32 accumulators and B from shared memory.
struct WGMMAShape: Hashable {
    /// Where A comes from, and which shared operands are MN-major (rows are K) rather than K-major.
    enum Operands: Int, Hashable, Comparable {
        /// `fa_wgmma_ss_N`: A and B K-major (S = Q Kᵀ).
        case kMajor
        /// `fa_wgmma_ss_kmn_N`: A K-major, B MN-major (dV += Pᵀ dO with Pᵀ stored key by key).
        case bMNMajor
        /// `fa_wgmma_ss_mn_N`: A and B MN-major (dQ = dS K with dS stored key by key).
        case mnMajor
        /// `fa_wgmma_rs_N`: A from registers, B MN-major (`V` stored key by key); always accumulates.
        case registers
        /// `fa_wgmma_rk_N`: A from registers, B K-major (Sᵀ = K Qᵀ with K resident in registers).
        case registersKMajor

        static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    let n: Int
    let operands: Operands

    /// `fa_wgmma_<form>_N(d, a, b, accumulate)` or `fa_wgmma_rs_N(d, a, b)`: `d[j][e]` is the accumulator layout of
    /// `mma.sync` m16n8 tiles, one per 8 columns, for this thread's warp's 16 rows of the warpgroup's 64.
    func source(_ type: String) -> String {
        let count = n / 2
        let accumulators = (0..<count).map { "%\($0)" }.joined(separator: ", ")
        let operandList = (0..<n / 8).map { j in (0..<4).map { "\"+f\"(d[\(j)][\($0)])" }.joined(separator: ", ") }
            .joined(separator: ",\n        ")
        let instruction = "wgmma.mma_async.sync.aligned.m64n\(n)k16.f32.\(type).\(type)"
        let (suffix, transposes): (String, String)
        switch operands {
        case .registers, .registersKMajor:
            // The register forms differ in B's major and in whether the first product may overwrite `d`.
            let a = (count..<count + 4).map { "%\($0)" }.joined(separator: ", ")
            let (name, transposeB, accumulate) = operands == .registers
                ? ("rs", "1", (parameter: "", value: "1")) : ("rk", "0", (parameter: ", int accumulate", value: "accumulate"))
            return """
                FA_INLINE void fa_wgmma_\(name)_\(n)(float (&d)[\(n / 8)][4], const fa_u32 (&a)[4], fa_u64 b\(accumulate.parameter)) {
                    asm volatile("{ .reg .pred p; setp.ne.b32 p, %\(count + 5), 0;\\n"
                                 "\(instruction) {\(accumulators)}, {\(a)}, %\(count + 4), p, 1, 1, \(transposeB); }"
                        : \(operandList)
                        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(\(accumulate.value)));
                }

                """
        case .kMajor: (suffix, transposes) = ("ss", "0, 0")
        case .bMNMajor: (suffix, transposes) = ("ss_kmn", "0, 1")
        case .mnMajor: (suffix, transposes) = ("ss_mn", "1, 1")
        }
        return """
            FA_INLINE void fa_wgmma_\(suffix)_\(n)(float (&d)[\(n / 8)][4], fa_u64 a, fa_u64 b, int accumulate) {
                asm volatile("{ .reg .pred p; setp.ne.b32 p, %\(count + 2), 0;\\n"
                             "\(instruction) {\(accumulators)}, %\(count), %\(count + 1), p, 1, 1, \(transposes); }"
                    : \(operandList)
                    : "l"(a), "l"(b), "r"(accumulate));
            }

            """
    }
}
