/// Writes `count` new tokens per sequence into a device KV cache in one launch: keys and values `[B, Hkv, count, D]`
/// (any strides and dtype) after each sequence's tokens, the block table's new entries, and the new lengths.
///
/// The launch reads where to write from a patch the host uploads just before it: the lengths before the append, then
/// the table entries that change as (entry, page) pairs in entry order. A token's page is the patch's entry when it
/// has one (a binary search), else the table's; so no thread reads an entry or a length another thread writes, and
/// no ordering inside the launch is needed. A warp copies one (sequence, head, token) row, converting each element.
struct KVAppendKernel: GeneratedKernel {
    /// The cache's element type.
    let dtype: DType
    /// The new tokens' element type.
    let input: DType
    let isPaged: Bool

    static let threads = 128
    static let rowsPerBlock = threads / 32

    var name: String { "fa_kv_append_\(dtype)_from_\(input)_\(isPaged ? "paged" : "contiguous")" }

    var signature: KernelSignature<KVAppendOperands> {
        DecodeSignatures.append(input: input.cudaStorageType, storage: dtype.cudaStorageType)
    }

    /// Blocks for `rows` copied rows and `writes` table entries and lengths, a thread each.
    static func blocks(rows: Int, writes: Int) -> Int {
        max((rows + rowsPerBlock - 1) / rowsPerBlock, (writes + threads - 1) / threads, 1)
    }

    var source: String {
        let convert = { (value: String) in dtype.cudaFromFloat(input.cudaToFloat(value)) }
        return CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(
                \(signature.declaration)) {
                constexpr bool PAGED = \(isPaged);
                const int* const pairs = patch + B;
                const long long thread = fa_global_index();
                if (thread < B) lengths[thread] = patch[thread] + count;
                if (PAGED && thread < patchCount) blockTable[pairs[2 * thread]] = pairs[2 * thread + 1];

                const long long row = thread / 32;
                if (row >= (long long)B * Hkv * count) return;
                const int lane = threadIdx.x % 32;
                const int t = (int)(row % count), hkv = (int)(row / count % Hkv), b = (int)(row / ((long long)count * Hkv));
                const int position = patch[b] + t;
                long long keyOffset, valueOffset;
                if (PAGED) {
                    const int entry = b * tableStride + position / pageSize, slot = position % pageSize;
                    int low = 0, high = patchCount;
                    while (low < high) {  // the patch's pair for this entry, if any
                        const int middle = (low + high) / 2;
                        if (pairs[2 * middle] < entry) low = middle + 1; else high = middle;
                    }
                    const int page = low < patchCount && pairs[2 * low] == entry ? pairs[2 * low + 1] : blockTable[entry];
                    keyOffset = (long long)page * ks0 + (long long)slot * ks1 + (long long)hkv * ks2;
                    valueOffset = (long long)page * vs0 + (long long)slot * vs1 + (long long)hkv * vs2;
                } else {
                    keyOffset = (long long)b * ks0 + (long long)hkv * ks1 + (long long)position * ks2;
                    valueOffset = (long long)b * vs0 + (long long)hkv * vs1 + (long long)position * vs2;
                }
                const \(input.cudaStorageType)* const key = newK + b * nks0 + hkv * nks1 + t * nks2;
                const \(input.cudaStorageType)* const value = newV + b * nvs0 + hkv * nvs1 + t * nvs2;
                for (int d = lane; d < D; d += 32) K[keyOffset + d * ks3] = \(convert("key[d * nks3]"));
                for (int d = lane; d < DV; d += 32) V[valueOffset + d * vs3] = \(convert("value[d * nvs3]"));
            }

            """
    }
}
