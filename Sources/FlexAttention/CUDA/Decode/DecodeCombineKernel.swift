/// Merges the splits of a split-KV decode: per row, `LSE = log(Σₛ e^LSEₛ + e^sink)` and `O = Σₛ e^(LSEₛ − LSE) Oₛ`
/// (``AttentionOutput/merging(_:)``'s formula, the sink a part with O = 0), in split order, so the result does not
/// depend on timing. A row no split keeps and without a sink gets O = 0 and LSE = −∞; a NaN LSE makes its row NaN.
///
/// One CTA per row of `[B, Hq, Sq]`, built for latency (the combine follows the decode kernel on the critical path):
/// every split's LSE is loaded at once and reduced across the CTA into the row's LSE and one weight per split
/// (shared memory); then each thread takes a group of 4 columns (16-byte loads when Dv is a multiple of 4) and a
/// share of the splits, all its loads independent, and the shares are added in a fixed order through shared memory.
/// O is written with any strides.
struct DecodeCombineKernel: GeneratedKernel {
    let dtype: DType
    let valueDim: Int

    static let threads = 128

    var name: String { "fa_decode_combine_\(dtype)_dv\(valueDim)" }

    var signature: KernelSignature<DecodeCombineOperands> { DecodeSignatures.combine(storage: dtype.cudaStorageType) }

    /// Columns per thread: 4 (one 16-byte load) when Dv allows, else 1.
    private var width: Int { valueDim % 4 == 0 ? 4 : 1 }
    /// Column groups handled at once: a group per thread of a share.
    private var groups: Int { min(valueDim / width, Self.threads) }
    /// Threads that split the splits between them for one column group.
    private var shares: Int { Self.threads / groups }

    var source: String {
        let load = width == 4
            ? "const fa_float4 x = *(const fa_float4*)(partialO + (s * rows + row) * DV + column);"
                + " acc[0] = fmaf(w, x.x, acc[0]); acc[1] = fmaf(w, x.y, acc[1]); acc[2] = fmaf(w, x.z, acc[2]);"
                + " acc[3] = fmaf(w, x.w, acc[3]);"
            : "acc[0] = fmaf(w, partialO[(s * rows + row) * DV + column], acc[0]);"
        return CUDAPrelude.source + """
            struct __align__(16) fa_float4 { float x, y, z, w; };
            FA_INLINE float fa_nan_max(float x, float y) { return (x != x || y != y) ? __int_as_float(0x7fc00000) : fmaxf(x, y); }
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(
                \(signature.declaration)) {
                constexpr int DV = \(valueDim), THREADS = \(Self.threads), WIDTH = \(width), GROUPS = \(groups);
                constexpr int SHARES = \(shares), MAX_SPLITS = \(DecodeSplitPlanner.maximumSplits);
                __shared__ float sWeight[MAX_SPLITS], sReduce[THREADS / 32], sSum[SHARES][DV];
                const long long row = blockIdx.x;
                const int qi = (int)(row % Sq), head = (int)(row / Sq % Hq);
                const long long b = row / ((long long)Sq * Hq);
                const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

                // The row's LSE: the maximum of the splits' (and the sink), then the sum of their exponentials, each
                // reduced across the CTA in a fixed order.
                const float sink = sinks ? sinks[head] : fa_negative_infinity();
                const float own = threadIdx.x < splits ? partialLSE[threadIdx.x * rows + row] : fa_negative_infinity();
                float maximum = fa_nan_max(own, sink);
                #pragma unroll
                for (int offset = 16; offset > 0; offset /= 2)
                    maximum = fa_nan_max(maximum, __shfl_xor_sync(0xffffffffu, maximum, offset));
                if (lane == 0) sReduce[warp] = maximum;
                __syncthreads();
                maximum = sReduce[0];
                #pragma unroll
                for (int w = 1; w < THREADS / 32; ++w) maximum = fa_nan_max(maximum, sReduce[w]);
                const float reference = maximum == fa_negative_infinity() ? 0.0f : maximum;
                float total = (threadIdx.x < splits ? expf(own - reference) : 0.0f) + (threadIdx.x == 0 ? expf(sink - reference) : 0.0f);
                #pragma unroll
                for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
                __syncthreads();  // every thread has read the maxima
                if (lane == 0) sReduce[warp] = total;
                __syncthreads();
                total = 0.0f;
                #pragma unroll
                for (int w = 0; w < THREADS / 32; ++w) total += sReduce[w];
                // No part kept: −∞ and weights 0; a NaN part: NaN throughout.
                const bool kept = total > 0.0f || total != total;
                const float lse = kept ? reference + logf(total) : fa_negative_infinity();
                if (threadIdx.x < splits) sWeight[threadIdx.x] = kept ? expf(own - lse) : 0.0f;
                __syncthreads();

                // O: share `share` of the splits for column group `group`, then the shares added in order.
                const int group = threadIdx.x % GROUPS, share = threadIdx.x / GROUPS;
                for (int column = group * WIDTH; share < SHARES && column < DV; column += GROUPS * WIDTH) {
                    float acc[WIDTH];
                    #pragma unroll
                    for (int j = 0; j < WIDTH; ++j) acc[j] = 0.0f;
                    #pragma unroll 4
                    for (int s = share; s < splits; s += SHARES) {
                        const float w = sWeight[s];
                        \(load)
                    }
                    #pragma unroll
                    for (int j = 0; j < WIDTH; ++j) sSum[share][column + j] = acc[j];
                }
                __syncthreads();
                for (int c = threadIdx.x; c < DV; c += THREADS) {
                    float acc = 0.0f;
                    #pragma unroll
                    for (int k = 0; k < SHARES; ++k) acc += sSum[k][c];
                    O[b * os0 + head * os1 + qi * os2 + c * os3] = \(dtype.cudaFromFloat("acc"));
                }
                if (threadIdx.x == 0) LSE[row] = lse;
            }

            """
    }
}
