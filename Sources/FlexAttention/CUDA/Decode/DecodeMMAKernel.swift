/// Decode attention on tensor cores (`mma.sync`) for 16-bit caches with head dims that are multiples of 16 up to 256:
/// a CTA of 8 warps per (sequence, KV head, row tile, split).
///
/// The query heads of the KV head times the new queries are packed into one tile of 16 or 32 rows (padded), so the
/// cache's keys and values are read once per KV head. Keys stream in 64-key blocks through a ring of `stages`
/// shared buffers filled by `cp.async`, `stages − 1` blocks ahead. Each warp takes 8 keys of every block with its
/// own online softmax: `S = Q Kᵀ` (m16n8k16), mods, exponentials and `P V` (m16n8k8, P straight from the S
/// fragment) stay in registers with no barrier between warps, and the eight warps' states are merged through shared
/// memory at the end. Decoding is bound by memory, and the loop's instructions were what kept the loads from being
/// issued sooner: 8 warps of 8 keys issue half the instructions per warp of 4 warps of 16 and hide twice the
/// latency. With a mask, blocks are tested before their loads (``DecodeKernelText/blockSelection(rowsPerTile:mask:)``)
/// and a block the mask removes entirely is neither loaded nor computed. Tokens at or past the sequence's length are
/// never read: their rows are zero-filled and their scores removed.
struct DecodeMMAKernel: DecodeAttentionKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    let isPaged: Bool
    /// 16-row tiles of packed rows: 1 up to 16 rows, 2 beyond (and more rows take more CTAs).
    let rowTiles: Int
    /// Shared K/V buffers; ``fitting(maxSharedMemoryPerMultiprocessor:)`` picks them.
    var stages = 3

    static let supportedHeadDims = MMAForwardKernel.supportedHeadDims

    /// The kernel for `rows` packed rows (the group times the new queries).
    init(dtype: DType, headDim: Int, valueDim: Int, rows: Int, isPaged: Bool, mask: CUDAModFunction?,
         scoreMod: CUDAModFunction?) {
        (self.dtype, self.headDim, self.valueDim, self.isPaged) = (dtype, headDim, valueDim, isPaged)
        (self.mask, self.scoreMod) = (mask, scoreMod)
        rowTiles = rows <= 16 ? 1 : 2
    }

    var rowsPerTile: Int { 16 * rowTiles }
    var keyBlock: Int { 64 }
    var threads: Int { 256 }
    /// CTAs the launch bounds ask the compiler to fit per multiprocessor: two (at most 128 registers a thread) for one
    /// row tile; one for two, whose accumulators alone take 128.
    var ctasPerMultiprocessor: Int { rowTiles == 1 ? 2 : 1 }

    var name: String { kernelName("fa_decode_mma", "_st\(stages)") }

    /// Dynamic shared memory: Q `[R][D + 8]` and per stage K `[64][D + 8]` and V `[64][Dv + 8]` (16-bit; the 8 extra
    /// columns put `ldmatrix`'s rows in different banks). The stages are reused for the warps' merge, four warps'
    /// `[R][Dv]` Float32 accumulators and `[R][2]` maxima and sums at a time. (The mask's row tables are static
    /// shared memory.)
    var sharedMemoryBytes: Int {
        let stagesBytes = 2 * stages * keyBlock * (headDim + 8 + valueDim + 8)
        let merge = 4 * 4 * rowsPerTile * (valueDim + 2)
        return 2 * rowsPerTile * (headDim + 8) + max(stagesBytes, merge)
    }

    /// This kernel with the most stages (2 to 4) such that ``ctasPerMultiprocessor`` CTAs fit `bytes` of shared
    /// memory per multiprocessor (each also holds 1 KB for the system), or two.
    func fitting(maxSharedMemoryPerMultiprocessor bytes: Int) -> Self {
        var kernel = self
        kernel.stages = 4
        while kernel.stages > 2 && ctasPerMultiprocessor * (kernel.sharedMemoryBytes + 1024) > bytes { kernel.stages -= 1 }
        return kernel
    }

    var source: String {
        CUDAModPrelude.fastModsDefine + CUDAPrelude.source + CUDAModPrelude.source + TensorCoreHelpers.source(dtype)
            + (mask?.definition ?? "") + (scoreMod?.definition ?? "") + SharedTileLoader.source
            + DecodeKernelText.helpers(dtype) + loader + kernel
    }

    /// Starts the copies of tokens `first ..< first + BN` of (b, hkv) into a stage: keys and values row by row, one
    /// page lookup per row for both, 16 bytes per `cp.async`, zeros past `length`.
    private var loader: String {
        let type = TensorCoreHelpers.ptxType(dtype)
        return """
        // d += a (16x8, row-major) * b (8x8, column-major), Float32 accumulators: P V over 8 keys.
        FA_INLINE void fa_mma_k8(float (&d)[4], const fa_u32 (&a)[2], fa_u32 b) {
            asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.\(type).\(type).f32 "
                         "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(b));
        }
        template <int BN, int D, int DV, int THREADS, bool PAGED>
        FA_INLINE void fa_decode_load_stage(fa_u16* sK, fa_u16* sV, const fa_u16* keys, const fa_u16* values,
                                            long long ks0, long long keySlot, long long ks3, long long vs0,
                                            long long valueSlot, long long vs3, const int* table, int pageSize,
                                            unsigned magic, int first, int length, int vectorLoads) {
            constexpr int KC = D / 8, VC = DV / 8, CHUNKS = KC > VC ? KC : VC;
            #pragma unroll
            for (int step = 0; step < (BN * CHUNKS + THREADS - 1) / THREADS; ++step) {
                const int i = threadIdx.x + step * THREADS;
                if (i >= BN * CHUNKS) break;
                const int r = i / CHUNKS, c = i % CHUNKS * 8, t = first + r;
                fa_u16* const k = sK + r * (D + 8) + c;
                fa_u16* const v = sV + r * (DV + 8) + c;
                if (t >= length) {
                    if (c < D) *(fa_u128*)k = fa_u128{0, 0, 0, 0};
                    if (c < DV) *(fa_u128*)v = fa_u128{0, 0, 0, 0};
                    continue;
                }
                const fa_token token = fa_decode_locate<PAGED>(table, pageSize, magic, t);
                const fa_u16* const keyRow = keys + token.page * ks0 + token.slot * keySlot;
                const fa_u16* const valueRow = values + token.page * vs0 + token.slot * valueSlot;
                if (vectorLoads) {
                    if (c < D) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                                            :: "r"((fa_u32)__cvta_generic_to_shared(k)), "l"(keyRow + c) : "memory");
                    if (c < DV) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                                             :: "r"((fa_u32)__cvta_generic_to_shared(v)), "l"(valueRow + c) : "memory");
                } else {
                    #pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        if (c < D) k[j] = keyRow[(c + j) * ks3];
                        if (c < DV) v[j] = valueRow[(c + j) * vs3];
                    }
                }
            }
        }

        """
    }

    private var kernel: String {
        let m = rowTiles
        let masked = DecodeKernelText.maskedKeep(row: "16 * mt + lane / 4 + 8 * (e / 2)", key: "key")
        return """
            extern "C" __global__ void __launch_bounds__(\(threads), \(ctasPerMultiprocessor))
            \(name)(
                \(signature.declaration)) {
                constexpr int D = \(headDim), DV = \(valueDim), DP = D + 8, DVP = DV + 8, M = \(m), R = 16 * M;
                constexpr int BN = 64, STAGES = \(stages), THREADS = \(threads), STAGE = BN * (DP + DVP);
                constexpr bool PAGED = \(isPaged);
                constexpr float LOG2E = 1.4426950408889634f;
                const float scaleLog2 = scale * LOG2E;
                extern __shared__ __align__(16) fa_u16 shared[];
                fa_u16* const sQ = shared;              // [R][DP]
                fa_u16* const sKV = sQ + R * DP;         // stage i: K at sKV + i * STAGE, V BN * DP further
                \(DecodeKernelText.indices(rowsPerTile: rowsPerTile, mask: mask, scoreMod: scoreMod))
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                \(DecodeKernelText.maskTables(rowsPerTile: rowsPerTile, mask: mask))
                \(DecodeKernelText.blockSelection(rowsPerTile: rowsPerTile, mask: mask))

                // The ring: each prefetch takes the split's next block (if any) into the next stage and commits one
                // group, empty past the end; slotBlock[i] is the entry (block << 1 | partial) stage i holds, −1 for
                // none.
                int filled = 0, slotBlock[STAGES];
                #pragma unroll
                for (int i = 0; i < STAGES; ++i) slotBlock[i] = -1;
                const auto prefetch = [&]() {
                    const int slot = filled % STAGES, entry = nextBlock();
                    if (entry >= 0) {
                        fa_u16* const sK = sKV + slot * STAGE;
                        fa_decode_load_stage<BN, D, DV, THREADS, PAGED>(
                            sK, sK + BN * DP, keyBase, valueBase, ks0, keySlotStride, ks3, vs0, valueSlotStride, vs3,
                            table, pageSize, pageMagic, (entry >> 1) * BN, L, vectorLoads);
                    }
                    #pragma unroll
                    for (int i = 0; i < STAGES; ++i) if (i == slot) slotBlock[i] = entry;
                    fa_cp_async_commit();
                    ++filled;
                };
                for (int i = 0; i < STAGES - 1; ++i) prefetch();  // the first loads go out before Q's
                fa_decode_load_query<R, D, DP, THREADS>(sQ, Q, qs0, qs1, qs2, qs3, b, hkv, group, Sq, row0, rows);
                // This thread's rows i < 2M: tile m = i / 2, row lane / 4 + 8 (i % 2) of it.
                \(preparedRows(count: 2 * m, rowOf: "16 * (i / 2) + lane / 4 + 8 * (i % 2)"))
                float o[M][DV / 8][4], rowMax[2 * M], rowSum[2 * M];  // rowMax in base 2; rowSum this thread's part
                #pragma unroll
                for (int i = 0; i < 2 * M; ++i) {
                    rowMax[i] = fa_negative_infinity();
                    rowSum[i] = 0.0f;
                    #pragma unroll
                    for (int j = 0; j < DV / 8; ++j) o[i / 2][j][2 * (i % 2)] = o[i / 2][j][2 * (i % 2) + 1] = 0.0f;
                }
                for (int consumed = 0;; ++consumed) {
                    fa_cp_async_wait<STAGES - 2>();
                    __syncthreads();  // this stage's copies (and Q) are visible; every warp is done with the last one
                    const int slot = consumed % STAGES;
                    int entry = -1;
                    #pragma unroll
                    for (int i = 0; i < STAGES; ++i) if (i == slot) entry = slotBlock[i];
                    if (entry < 0) break;
                    prefetch();  // into the stage consumed last time round
                    const int block = entry >> 1;
                    const bool partial = (entry & 1) != 0;
                    (void)partial;

                    // S = Q Kt on this warp's 8 keys (m16n8k16, two 16-wide steps per K load): s[mt][e] is row
                    // lane / 4 + 8 (e / 2) of tile mt, key k0 + 2 (lane % 4) + e % 2.
                    const int k0 = block * BN + 8 * warp;
                    const fa_u16* const sK = sKV + slot * STAGE + 8 * warp * DP;
                    const fa_u16* const sV = sKV + slot * STAGE + BN * DP + 8 * warp * DVP;
                    float s[M][4];
                    #pragma unroll
                    for (int mt = 0; mt < M; ++mt) s[mt][0] = s[mt][1] = s[mt][2] = s[mt][3] = 0.0f;
                    #pragma unroll
                    for (int kk = 0; kk < D / 32; ++kk) {
                        fa_u32 bk[4];
                        fa_ldmatrix_x4(bk, sK + (lane % 8) * DP + kk * 32 + 8 * (lane / 8));
                        #pragma unroll
                        for (int mt = 0; mt < M; ++mt) {
                            const fa_u16* const q = sQ + (16 * mt + lane % 8 + 8 * (lane / 8 % 2)) * DP + kk * 32 + 8 * (lane / 16);
                            fa_u32 a[4];
                            fa_ldmatrix_x4(a, q);
                            fa_mma(s[mt], a, bk[0], bk[1]);
                            fa_ldmatrix_x4(a, q + 16);
                            fa_mma(s[mt], a, bk[2], bk[3]);
                        }
                    }
                    if (D % 32 != 0) {  // the last 16 columns
                        fa_u32 bk[4];
                        fa_ldmatrix_x4(bk, sK + (lane % 8) * DP + D - 16 + 8 * (lane / 8 % 2));
                        #pragma unroll
                        for (int mt = 0; mt < M; ++mt) {
                            fa_u32 a[4];
                            fa_ldmatrix_x4(a, sQ + (16 * mt + lane % 8 + 8 * (lane / 8 % 2)) * DP + D - 16 + 8 * (lane / 16));
                            fa_mma(s[mt], a, bk[0], bk[1]);
                        }
                    }

                    // Mods, the length and (in blocks it keeps in part) the mask, and the online softmax per row, in
                    // base 2.
                    #pragma unroll
                    for (int mt = 0; mt < M; ++mt)
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int i = 2 * mt + e / 2, key = k0 + 2 * (lane % 4) + e % 2;
                            const float x = \(DecodeKernelText.score(
                                "s[mt][e]", scoreMod: scoreMod, head: "rowHead[i]", position: "rowPosition[i]",
                                key: "key", prepared: "scorePrepared[i]"));
                            const bool keep = \(ModKernelText.keep(bound: "key < L", masked: mask == nil ? nil : masked));
                            s[mt][e] = keep ? x : fa_negative_infinity();
                        }
                    #pragma unroll
                    for (int i = 0; i < 2 * M; ++i) {
                        const int mt = i / 2, r = i % 2;
                        float blockMax = fmaxf(s[mt][2 * r], s[mt][2 * r + 1]);
                        blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 1));
                        blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 2));
                        blockMax = fmaxf(rowMax[i], blockMax);
                        // A row with nothing kept yet subtracts 0, not -inf, so its exponentials are 0, never NaN.
                        const float reference = fa_softmax_reference(blockMax);
                        const float correction = fa_exp2(rowMax[i] - reference);
                        rowMax[i] = blockMax;
                        if (correction != 1.0f) {  // the maximum moved: rescale (rarely, once the row has settled)
                            #pragma unroll
                            for (int j = 0; j < DV / 8; ++j) {
                                o[mt][j][2 * r] *= correction;
                                o[mt][j][2 * r + 1] *= correction;
                            }
                        }
                        s[mt][2 * r] = fa_exp2(s[mt][2 * r] - reference);
                        s[mt][2 * r + 1] = fa_exp2(s[mt][2 * r + 1] - reference);
                        rowSum[i] = rowSum[i] * correction + s[mt][2 * r] + s[mt][2 * r + 1];
                    }

                    // O += P V on the warp's 8 keys (m16n8k8: the S fragment is the A operand); each V fragment
                    // serves all M tiles.
                    fa_u32 p[M][2];
                    #pragma unroll
                    for (int mt = 0; mt < M; ++mt) {
                        p[mt][0] = fa_pack(s[mt][0], s[mt][1]);
                        p[mt][1] = fa_pack(s[mt][2], s[mt][3]);
                    }
                    #pragma unroll
                    for (int n = 0; n < DV / 32; ++n) {
                        fa_u32 bv[4];
                        fa_ldmatrix_x4_trans(bv, sV + (lane % 8) * DVP + n * 32 + 8 * (lane / 8));
                        #pragma unroll
                        for (int t = 0; t < 4; ++t)
                            #pragma unroll
                            for (int mt = 0; mt < M; ++mt) fa_mma_k8(o[mt][4 * n + t], p[mt], bv[t]);
                    }
                    if (DV % 32 != 0) {  // the last 16 columns
                        fa_u32 bv[4];
                        fa_ldmatrix_x4_trans(bv, sV + (lane % 8) * DVP + DV - 16 + 8 * (lane / 8 % 2));
                        #pragma unroll
                        for (int t = 0; t < 2; ++t)
                            #pragma unroll
                            for (int mt = 0; mt < M; ++mt) fa_mma_k8(o[mt][DV / 8 - 2 + t], p[mt], bv[t]);
                    }
                }
                asm volatile("cp.async.wait_all;" ::: "memory");
                __syncthreads();  // every warp is done with the stages: they hold the merge now

                // Merge the eight warps' rows through shared memory, four at a time (accumulators [4][R][DV], maxima
                // and sums [4][R][2]): warp w + 4 into warp w, then warps 0 to 3 into each output element.
                float* const sO = (float*)sKV;
                float* const sStats = sO + 4 * R * DV;
                #pragma unroll
                for (int i = 0; i < 2 * M; ++i) {
                    rowSum[i] += __shfl_xor_sync(0xffffffffu, rowSum[i], 1);
                    rowSum[i] += __shfl_xor_sync(0xffffffffu, rowSum[i], 2);
                }
                const auto publish = [&](int into) {
                    #pragma unroll
                    for (int i = 0; i < 2 * M; ++i) {
                        const int mt = i / 2, r = i % 2, row = 16 * mt + lane / 4 + 8 * r;
                        #pragma unroll
                        for (int j = 0; j < DV / 8; ++j) {
                            float* const target = sO + (into * R + row) * DV + 8 * j + 2 * (lane % 4);
                            target[0] = o[mt][j][2 * r];
                            target[1] = o[mt][j][2 * r + 1];
                        }
                        if (lane % 4 == 0) {
                            sStats[(into * R + row) * 2] = rowMax[i];
                            sStats[(into * R + row) * 2 + 1] = rowSum[i];
                        }
                    }
                };
                if (warp >= 4) publish(warp - 4);
                __syncthreads();
                if (warp < 4) {
                    #pragma unroll
                    for (int i = 0; i < 2 * M; ++i) {
                        const int mt = i / 2, r = i % 2, row = 16 * mt + lane / 4 + 8 * r;
                        const float other = sStats[(warp * R + row) * 2];
                        const float reference = fa_softmax_reference(fmaxf(rowMax[i], other));
                        const float mine = fa_exp2(rowMax[i] - reference), theirs = fa_exp2(other - reference);
                        rowMax[i] = fmaxf(rowMax[i], other);
                        rowSum[i] = rowSum[i] * mine + sStats[(warp * R + row) * 2 + 1] * theirs;
                        #pragma unroll
                        for (int j = 0; j < DV / 8; ++j) {
                            const float* const source = sO + (warp * R + row) * DV + 8 * j + 2 * (lane % 4);
                            o[mt][j][2 * r] = o[mt][j][2 * r] * mine + source[0] * theirs;
                            o[mt][j][2 * r + 1] = o[mt][j][2 * r + 1] * mine + source[1] * theirs;
                        }
                    }
                }
                __syncthreads();
                if (warp < 4) publish(warp);
                __syncthreads();
                \(DecodeKernelText.store(dtype))
                for (int index = threadIdx.x; index < R * DV; index += THREADS) {
                    const int r = index / DV, c = index % DV;
                    if (row0 + r >= rows) continue;
                    float maximum = fa_negative_infinity();
                    #pragma unroll
                    for (int w = 0; w < 4; ++w) maximum = fmaxf(maximum, sStats[(w * R + r) * 2]);
                    const float reference = fa_softmax_reference(maximum);
                    float sum = 0.0f, acc = 0.0f;
                    #pragma unroll
                    for (int w = 0; w < 4; ++w) {
                        const float weight = fa_exp2(sStats[(w * R + r) * 2] - reference);
                        sum += sStats[(w * R + r) * 2 + 1] * weight;
                        acc += sO[(w * R + r) * DV + c] * weight;
                    }
                    store(row0 + r, c, maximum, sum, acc);
                }
            }

            """
    }
}
