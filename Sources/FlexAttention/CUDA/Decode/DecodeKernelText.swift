/// The steps both decode families share, as kernel text: where a cached token lives, the CTA's indices, loading the
/// packed query rows, the per-block mask test, and writing a row's result.
///
/// A CTA owns one (sequence `b`, KV head `hkv`, row tile, split). Its rows are the query heads of `hkv` times the
/// `Sq` new queries, packed: row `ρ` is head `hkv · group + ρ / Sq`, query `ρ % Sq`, at absolute position
/// `L − Sq + ρ % Sq`. Split `s` of `splits` visits key blocks `s, s + splits, s + 2·splits, …` below `L`:
/// interleaved, so any mask's kept blocks (a window at the end, say) spread evenly over the splits.
enum DecodeKernelText {
    /// Device functions: a token's row in the cache, and the Q and Float32 tile loaders.
    static func helpers(_ dtype: DType) -> String {
        let storage = dtype.cudaStorageType
        return """
            // Token t of a sequence as (page, slot): through the sequence's row of the block table, with
            // t / pageSize as a multiply-high by magic = floor((2^32 - 1) / pageSize) and one correction (exact for every
            // t below 2^31); (0, t) in a contiguous cache. Its row starts page * pageStride + slot * slotStride
            // elements past the (b, hkv) base.
            struct fa_token { long long page; int slot; };
            template <bool PAGED>
            FA_INLINE fa_token fa_decode_locate(const int* table, int pageSize, unsigned magic, int t) {
                if (!PAGED) return fa_token{0, t};
                unsigned q = __umulhi((unsigned)t, magic);
                int slot = t - (int)q * pageSize;
                if (slot >= pageSize) { ++q; slot -= pageSize; }
                return fa_token{table[q], slot};
            }
            // One query element into a tile: raw for the tensor cores' 16-bit tiles, widened for Float32 ones.
            \(dtype == .float32 ? "" : "FA_INLINE void fa_decode_put(fa_u16* target, fa_u16 value) { *target = value; }")
            FA_INLINE void fa_decode_put(float* target, \(storage) value) { *target = \(dtype.cudaToFloat("value")); }
            // Packed query rows row0 ..< row0 + ROWS of (b, hkv) into a tile of PITCH-element rows; rows past `rows`
            // are zeros.
            template <int ROWS, int COLS, int PITCH, int THREADS, typename T>
            FA_INLINE void fa_decode_load_query(T* tile, const \(storage)* Q, long long qs0, long long qs1, long long qs2,
                                                long long qs3, int b, int hkv, int group, int Sq, int row0, int rows) {
                for (int i = threadIdx.x; i < ROWS * COLS; i += THREADS) {
                    const int r = i / COLS, d = i % COLS, rho = row0 + r;
                    \(storage) value = 0;
                    if (rho < rows) value = Q[b * qs0 + (hkv * group + rho / Sq) * qs1 + (rho % Sq) * qs2 + d * qs3];
                    fa_decode_put(tile + r * PITCH + d, value);
                }
            }
            // Tokens first ..< first + ROWS of (b, hkv) as floats, PITCH apart; tokens at or past `length` are zeros.
            // A warp per row, a lane per column: coalesced when columns are contiguous.
            template <int ROWS, int COLS, int PITCH, int THREADS, bool PAGED>
            FA_INLINE void fa_decode_load_floats(float* tile, const \(storage)* base, long long pageStride,
                                                 long long slotStride, long long columnStride, const int* table,
                                                 int pageSize, unsigned magic, int first, int length) {
                for (int r = threadIdx.x / 32; r < ROWS; r += THREADS / 32) {
                    const int t = first + r;
                    const fa_token token = fa_decode_locate<PAGED>(table, pageSize, magic, t < length ? t : 0);
                    const \(storage)* const row = base + token.page * pageStride + token.slot * slotStride;
                    for (int c = threadIdx.x % 32; c < COLS; c += 32)
                        tile[r * PITCH + c] = t < length ? \(dtype.cudaToFloat("row[c * columnStride]")) : 0.0f;
                }
            }

            """
    }

    /// The CTA's indices (`b`, `hkv`, `split`, `L`, `rows`, `row0`, `group`, `batch`, `rowCount`) for `R` packed
    /// rows per tile, and the mods' argument structs.
    static func indices(rowsPerTile: Int, mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        """
        const int group = Hq / Hkv, rows = group * Sq, rowTiles = (rows + \(rowsPerTile) - 1) / \(rowsPerTile);
            const int tile = blockIdx.x % rowTiles, bh = blockIdx.x / rowTiles;
            const int b = bh / Hkv, hkv = bh % Hkv, split = blockIdx.y, row0 = tile * \(rowsPerTile);
            const int batch = gridDim.x / (Hkv * rowTiles);
            const long long rowCount = (long long)batch * Hq * Sq;  // rows of O: the partials' row count
            const int L = lengths[b];
            const int* const table = blockTable ? blockTable + (long long)b * tableStride : nullptr;
            const int blocks = (L + BN - 1) / BN;
            // (b, hkv)'s keys and values: rows page * s0 + slot * s1 past these in a pool, t * s2 in a contiguous cache.
            const auto* const keyBase = PAGED ? K + hkv * ks2 : K + b * ks0 + hkv * ks1;
            const auto* const valueBase = PAGED ? V + hkv * vs2 : V + b * vs0 + hkv * vs1;
            const long long keySlotStride = PAGED ? ks1 : ks2, valueSlotStride = PAGED ? vs1 : vs2;
            const unsigned pageMagic = PAGED ? 0xffffffffu / (unsigned)pageSize : 0u;
            // The split's blocks split, split + splits, … below `blocks`, visited from a rotation fixed by the (b, hkv)
            // index, so that CTAs at the same step read unrelated addresses.
            const int count = split < blocks ? (blocks - split + splits - 1) / splits : 0;
            const int rotation = count > 0 ? (int)(((unsigned)bh * 2654435761u >> 8) % (unsigned)count) : 0;
            const auto blockAt = [&](int position) {
                const int j = position + rotation;
                return split + (j >= count ? j - count : j) * splits;
            };
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
        """
    }

    /// Candidate key blocks a mask test round takes: one per warp of the tensor-core kernel, two of the CUDA-core one.
    static let candidatesPerRound = 8

    /// With a mask, the tile rows' heads, positions and the mask's prepared values in shared memory (`sRowHead`,
    /// `sRowPosition`, `sMaskPrepared`) for the block tests and the masked scores; rows past the real ones are
    /// clamped to the last. Visible after the next barrier.
    static func maskTables(rowsPerTile: Int, mask: CUDAModFunction?) -> String {
        guard mask != nil else { return "" }
        return """
        __shared__ int sRowHead[\(rowsPerTile)], sRowPosition[\(rowsPerTile)];
            __shared__ fa_mask_prepared sMaskPrepared[\(rowsPerTile)];
            for (int r = threadIdx.x; r < \(rowsPerTile); r += THREADS) {
                const int rho = min(row0 + r, rows - 1), head = hkv * group + rho / Sq;
                sRowHead[r] = head;
                sRowPosition[r] = L - Sq + rho % Sq;
                sMaskPrepared[r] = fa_mask_prepare(b, head, L, L, mask_arguments);
            }
        """
    }

    /// `nextBlock()`: the split's next key block to load, as `block << 1 | partial`, or −1 past the last (the same in
    /// every thread). Without a mask every block below `L` is taken, none partial. With one, blocks are tested in
    /// rounds of ``candidatesPerRound`` before any of their loads: each warp evaluates the mask on the tile's real
    /// rows × a candidate's keys below `L` and votes whether it keeps any (and all) of them; blocks it keeps nothing
    /// of are skipped, blocks it keeps in part are marked for per-score masking.
    static func blockSelection(rowsPerTile: Int, mask: CUDAModFunction?) -> String {
        guard mask != nil else {
            return """
                int cursor = 0;  // the next position of the split's blocks
                    const auto nextBlock = [&]() { return cursor < count ? blockAt(cursor++) << 1 : -1; };
                """
        }
        let candidates = candidatesPerRound
        return """
            __shared__ int sRound[\(candidates)];  // per candidate: bit 0 keeps some, bit 1 keeps not all
                const int realRows = min(\(rowsPerTile), rows - row0);
                int cursor = 0, roundFirst = 0;  // positions of the split's blocks
                unsigned roundKept = 0, roundPartial = 0;
                const auto testRound = [&]() {
                    __syncthreads();  // every thread has read the last round's flags (and the row tables are visible)
                    for (int c = threadIdx.x / 32; c < \(candidates); c += THREADS / 32) {
                        const int block = cursor + c < count ? blockAt(cursor + c) : -1;
                        bool any = false, all = true;
                        if (block >= 0) {
                            for (int r = 0; r < realRows; ++r)
                                for (int k = threadIdx.x % 32; k < BN; k += 32) {
                                    const int key = block * BN + k;
                                    if (key >= L) continue;
                                    const bool keep = fa_mask(b, sRowHead[r], sRowPosition[r], key, L, L, sMaskPrepared[r]);
                                    any = any || keep;
                                    all = all && keep;
                                }
                        }
                        any = __any_sync(0xffffffffu, any);
                        all = __all_sync(0xffffffffu, all);
                        if (threadIdx.x % 32 == 0) sRound[c] = any ? (all ? 1 : 3) : 0;
                    }
                    __syncthreads();
                    roundFirst = cursor;
                    cursor += \(candidates);
                    roundKept = roundPartial = 0;
                    #pragma unroll
                    for (int c = 0; c < \(candidates); ++c) {
                        roundKept |= (unsigned)(sRound[c] & 1) << c;
                        roundPartial |= (unsigned)(sRound[c] >> 1) << c;
                    }
                };
                const auto nextBlock = [&]() {
                    while (roundKept == 0 && cursor < count) testRound();
                    if (roundKept == 0) return -1;
                    const int c = __ffs(roundKept) - 1;
                    roundKept &= roundKept - 1;
                    return blockAt(roundFirst + c) << 1 | (int)((roundPartial >> c) & 1u);
                };
            """
    }

    /// Whether tile row `row` keeps key `key` in a block marked partial (after ``maskTables(rowsPerTile:mask:)``).
    static func maskedKeep(row: String, key: String) -> String {
        "fa_mask(b, sRowHead[\(row)], sRowPosition[\(row)], \(key), L, L, sMaskPrepared[\(row)])"
    }

    /// `store(rho, c, maximum, sum, acc)`: writes column `c` of packed row `rho` from its base-2 running maximum,
    /// and its sum and accumulator relative to `fa_softmax_reference(maximum)`. With one split: O in the storage
    /// type and the LSE, the sink joined to the denominator; with several: this split's normalised partial O and its
    /// LSE, which the combine kernel merges (and joins the sink to). Column 0 writes the LSE.
    static func store(_ dtype: DType) -> String {
        """
        const auto store = [&](int rho, int c, float maximum, float sum, float acc) {
                const int head = hkv * group + rho / Sq, qi = rho % Sq;
                const long long rowIndex = ((long long)b * Hq + head) * Sq + qi;
                const float reference = fa_softmax_reference(maximum);
                if (splits == 1) {
                    const float sink = sinks ? sinks[head] * LOG2E : fa_negative_infinity();
                    const float joined = fa_softmax_reference(fmaxf(maximum, sink));
                    const float rescale = fa_exp2(reference - joined);
                    const float total = sum * rescale + fa_exp2(sink - joined);
                    const float factor = total > 0.0f ? rescale / total : 0.0f;
                    O[b * os0 + head * os1 + qi * os2 + c * os3] = \(dtype.cudaFromFloat("acc * factor"));
                    if (c == 0) LSE[rowIndex] = total > 0.0f ? (joined + log2f(total)) * 0.6931471805599453f : fa_negative_infinity();
                } else {
                    const long long part = (long long)split * rowCount + rowIndex;
                    partialO[part * DV + c] = sum > 0.0f ? acc / sum : 0.0f;
                    if (c == 0) partialLSE[part] = fa_log_sum_exp(reference, sum);
                }
            };
        """
    }

    /// The score in base 2 of raw `q · k` `raw` for query head `head` at `position`, key `key`: the scale and
    /// log2(e) in one multiplication without a score mod.
    static func score(_ raw: String, scoreMod: CUDAModFunction?, head: String, position: String, key: String,
                      prepared: String) -> String {
        scoreMod == nil
            ? "\(raw) * scaleLog2"
            : "fa_score_mod(\(raw) * scale, b, \(head), \(position), \(key), L, L, \(prepared), nullptr) * LOG2E"
    }
}

/// A decode kernel of either family (``DecodeMMAKernel`` on tensor cores, ``DecodeScalarKernel`` on CUDA cores):
/// its launch shape and its parameters, ``DecodeSignatures/decode(storage:mask:scoreMod:)``.
protocol DecodeAttentionKernel: GeneratedKernel {
    var dtype: DType { get }
    var headDim: Int { get }
    var valueDim: Int { get }
    /// The mask, evaluated per key block before its loads; nil keeps every key below the sequence's length.
    var mask: CUDAModFunction? { get }
    var scoreMod: CUDAModFunction? { get }
    /// Whether the cache is a page pool read through a block table.
    var isPaged: Bool { get }
    /// Packed query rows per CTA.
    var rowsPerTile: Int { get }
    /// Keys per block: the unit of the mask test, the loads and the split interleaving.
    var keyBlock: Int { get }
    var threads: Int { get }
    var sharedMemoryBytes: Int { get }
}

extension DecodeAttentionKernel {
    var signature: KernelSignature<DecodeOperands> {
        DecodeSignatures.decode(storage: dtype.cudaStorageType, mask: mask != nil, scoreMod: scoreMod != nil)
    }

    /// `…_dtype_dD_dvDv_(paged|contiguous)_rR` and the mods' tags.
    func kernelName(_ prefix: String, _ extra: String = "") -> String {
        "\(prefix)_\(dtype)_d\(headDim)_dv\(valueDim)_\(isPaged ? "paged" : "contiguous")_r\(rowsPerTile)\(extra)"
            + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// The prepared score mod of each row this thread computes, `scorePrepared[i]` for the packed rows `rowOf(i)`
    /// (`count` of them), clamped into the real rows so that a padding row never reads a table out of range; and
    /// their heads and positions.
    func preparedRows(count: Int, rowOf: String) -> String {
        """
        int rowHead[\(count)], rowPosition[\(count)];
            \(scoreMod == nil ? "" : "fa_score_mod_prepared scorePrepared[\(count)];")
            #pragma unroll
            for (int i = 0; i < \(count); ++i) {
                const int rho = min(row0 + \(rowOf), rows - 1);
                rowHead[i] = hkv * group + rho / Sq;
                rowPosition[i] = L - Sq + rho % Sq;
                \(scoreMod == nil ? "" : "scorePrepared[i] = fa_score_mod_prepare(b, rowHead[i], L, L, score_arguments);")
            }
        """
    }
}
