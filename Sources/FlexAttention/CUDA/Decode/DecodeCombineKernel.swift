/// Merges the splits of a split-KV decode: per row, `LSE = log(Σₛ e^LSEₛ + e^sink)` and `O = Σₛ e^(LSEₛ − LSE) Oₛ`
/// (``AttentionOutput/merging(_:)``'s formula, the sink a part with O = 0), in split order, so the result does not
/// depend on timing. A row no split keeps and without a sink gets O = 0 and LSE = −∞; a NaN LSE makes its row NaN.
///
/// One CTA per row of `[B, Hq, Sq]`: its first warp reduces the splits' LSEs into the row's LSE and one weight per
/// split (in shared memory); then each thread sums one column of the partial outputs (Float32 `[splits, rows, Dv]`,
/// `[splits, rows]`) over the splits, coalesced across threads and independent across splits, and writes O (any
/// strides) and the LSE.
struct DecodeCombineKernel: GeneratedKernel {
    let dtype: DType
    let valueDim: Int

    static let threads = 128

    var name: String { "fa_decode_combine_\(dtype)_dv\(valueDim)" }

    var signature: KernelSignature<DecodeCombineOperands> { DecodeSignatures.combine(storage: dtype.cudaStorageType) }

    var source: String {
        CUDAPrelude.source + """
            FA_INLINE float fa_nan_max(float x, float y) { return (x != x || y != y) ? __int_as_float(0x7fc00000) : fmaxf(x, y); }
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(
                \(signature.declaration)) {
                constexpr int DV = \(valueDim), THREADS = \(Self.threads);
                __shared__ float sWeight[\(DecodeSplitPlanner.maximumSplits)], sLSE;
                const long long row = blockIdx.x;
                const int qi = (int)(row % Sq), head = (int)(row / Sq % Hq);
                const long long b = row / ((long long)Sq * Hq);
                if (threadIdx.x < 32) {
                    const int lane = threadIdx.x;
                    const float sink = sinks ? sinks[head] : fa_negative_infinity();
                    float maximum = sink;
                    for (int s = lane; s < splits; s += 32) maximum = fa_nan_max(maximum, partialLSE[s * rows + row]);
                    #pragma unroll
                    for (int offset = 16; offset > 0; offset /= 2)
                        maximum = fa_nan_max(maximum, __shfl_xor_sync(0xffffffffu, maximum, offset));
                    const float reference = maximum == fa_negative_infinity() ? 0.0f : maximum;
                    float total = lane == 0 ? expf(sink - reference) : 0.0f;
                    for (int s = lane; s < splits; s += 32) total += expf(partialLSE[s * rows + row] - reference);
                    #pragma unroll
                    for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
                    // No part kept: −∞ and weights 0; a NaN part: NaN throughout.
                    const bool kept = total > 0.0f || total != total;
                    const float lse = kept ? reference + logf(total) : fa_negative_infinity();
                    for (int s = lane; s < splits; s += 32) sWeight[s] = kept ? expf(partialLSE[s * rows + row] - lse) : 0.0f;
                    if (lane == 0) sLSE = lse;
                }
                __syncthreads();
                for (int c = threadIdx.x; c < DV; c += THREADS) {
                    float acc = 0.0f;
                    #pragma unroll 8
                    for (int s = 0; s < splits; ++s) acc = fmaf(sWeight[s], partialO[(s * rows + row) * DV + c], acc);
                    O[b * os0 + head * os1 + qi * os2 + c * os3] = \(dtype.cudaFromFloat("acc"));
                }
                if (threadIdx.x == 0) LSE[row] = sLSE;
            }

            """
    }
}
