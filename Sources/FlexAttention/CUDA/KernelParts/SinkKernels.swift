/// Attention sinks on the device: the two row-wise kernels a plan with sinks adds to its forward and backward passes
/// (``AttentionSinks`` has the algebra; the attention kernels themselves are unchanged).

/// Joins each row's sink to its denominator in place, after the forward kernel: the row and the sink are two parts
/// merged by ``LogSumExpMerge`` (``CUDALogSumExpMerge``), the sink's part having no value, so
/// `LSE′ = log(e^LSE + e^sink)` and `O′ = O · e^(LSE − LSE′)`. A row that keeps nothing gets `LSE′ = sink` and
/// `O′ = 0`; a NaN row stays NaN; a head whose sink is −∞ is left as it is. One warp per row, any O strides.
struct SinkForwardKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 128
    static let rowsPerBlock = threads / 32

    var name: String { "fa_sink_forward_\(dtype)" }

    /// `O, LSE, sinks, Hq, Sq, Dv, O's strides, rows`.
    static func signature(_ dtype: DType) -> KernelSignature<SinkForwardOperands> {
        typealias P = KernelParameter<SinkForwardOperands>
        return KernelSignature(
            [.pointer("O", dtype.cudaStorageType, readOnly: false) { $0.output.address },
             .pointer("LSE", "float", readOnly: false) { $0.logSumExp }, .pointer("sinks", "float") { $0.sinks },
             .int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength }, .int32("Dv") { $0.valueDim }]
                + P.strides("os") { $0.output.strides } + [.int64("rowCount") { $0.rows }])
    }

    var source: String {
        CUDAPrelude.source + CUDALogSumExpMerge.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                const long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32;
                if (row >= rowCount) return;
                const long long b = row / ((long long)Hq * Sq), h = row / Sq % Hq, q = row % Sq;
                const float sink = sinks[h];
                if (sink == fa_negative_infinity()) return;  // no sink on this head
                const float lse = LSE[row];
                fa_merge merge = fa_merge_begin();
                fa_merge_reference(merge, lse);
                fa_merge_reference(merge, sink);
                fa_merge_add(merge, lse);
                fa_merge_add(merge, sink);
                const float weight = fa_merge_weight(merge, lse);
                \(dtype.cudaStorageType)* o = O + b * os0 + h * os1 + q * os2;
                for (int c = threadIdx.x % 32; c < Dv; c += 32) {
                    const float value = weight != 0.0f ? weight * \(dtype.cudaToFloat("o[c * os3]")) : 0.0f;
                    o[c * os3] = \(dtype.cudaFromFloat("value"));
                }
                __syncwarp();  // every lane has read LSE[row] before it is replaced
                if (threadIdx.x % 32 == 0) LSE[row] = fa_merge_log_sum_exp(merge);
            }

            """
    }
}

/// A ``SinkForwardKernel`` launch's operands.
struct SinkForwardOperands {
    var output: TensorOperand
    var logSumExp: UInt64
    var sinks: UInt64
    var queryHeads: Int
    var queryLength: Int
    var valueDim: Int
    var rows: Int
}

/// The sinks' gradient, beside the backward pass: `∂loss/∂sink_h = −Σ_{b,i} e^(sink_h − LSE′[b,h,i]) · Δ[b,h,i]`
/// from the sink-adjusted log-sum-exp and the Delta the backward computes. One CTA per head; each thread sums the
/// rows `threadIdx.x + k · threads` in order, then a fixed tree adds the threads' sums, so the result has the same
/// bits on every run. A head whose sink is −∞ gets 0.
struct SinkGradientKernel: GeneratedKernel {
    static let threads = 256

    var name: String { "fa_sink_gradient" }

    /// `LSE, Delta, sinks, dSinks, B, Hq, Sq`.
    static let signature = KernelSignature<SinkGradientOperands>([
        .pointer("LSE", "float") { $0.logSumExp }, .pointer("Delta", "float") { $0.delta },
        .pointer("sinks", "float") { $0.sinks }, .pointer("dSinks", "float", readOnly: false) { $0.sinkGradient },
        .int32("B") { $0.batch }, .int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength },
    ])

    var source: String {
        CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature.declaration)) {
                __shared__ float sums[\(Self.threads)];
                const int h = blockIdx.x;
                const float sink = sinks[h];
                float sum = 0.0f;
                if (sink != fa_negative_infinity()) {
                    const long long rows = (long long)B * Sq;
                    for (long long i = threadIdx.x; i < rows; i += \(Self.threads)) {
                        const long long row = (i / Sq * Hq + h) * Sq + i % Sq;
                        sum += expf(sink - LSE[row]) * Delta[row];
                    }
                }
                sums[threadIdx.x] = sum;
                __syncthreads();
                #pragma unroll
                for (int width = \(Self.threads / 2); width > 0; width /= 2) {
                    if (threadIdx.x < width) sums[threadIdx.x] += sums[threadIdx.x + width];
                    __syncthreads();
                }
                if (threadIdx.x == 0) dSinks[h] = sink == fa_negative_infinity() ? 0.0f : -sums[0];
            }

            """
    }
}

/// A ``SinkGradientKernel`` launch's operands.
struct SinkGradientOperands {
    var logSumExp: UInt64
    var delta: UInt64
    var sinks: UInt64
    var sinkGradient: UInt64
    var batch: Int
    var queryHeads: Int
    var queryLength: Int
}
