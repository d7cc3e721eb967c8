/// ``MergeKernel``'s merge with eight contiguous elements a thread, read and written 16 bytes at a time: for the
/// usual layouts (the head dim contiguous, rows 16-byte aligned, `Dv / 8` dividing 32, so that a row's threads share a
/// warp), where the one-element-a-lane kernel moves too few bytes per instruction to reach the memory's bandwidth.
/// Same parameters, rules and in-place guarantee: a thread reads its elements before writing them, and a row's
/// log-sum-exp is written after every thread of the row (one warp) has read the parts'.
struct MergeVectorKernel: GeneratedKernel {
    static let threads = 256
    /// Elements a thread merges.
    static let width = 8

    var name: String { "fa_merge_attention_vector_\(MergeKernel.partsPerLaunch)" }

    static var signature: KernelSignature<MergeOperands> { MergeKernel.signature }

    var source: String {
        let parts = 0..<MergeKernel.partsPerLaunch
        func each(_ line: (Int) -> String, indent: Int) -> String {
            parts.map(line).joined(separator: "\n" + String(repeating: " ", count: indent))
        }
        func row(_ p: Int) -> String { "b * l\(p)s0 + h * l\(p)s1 + q * l\(p)s2" }
        func element(_ p: Int) -> String { "b * o\(p)s0 + h * o\(p)s1 + q * o\(p)s2 + c" }
        return CUDAPrelude.source + CUDALogSumExpMerge.source + """
            // Eight elements of a dtype code (DType.mergeCode) from 16-byte-aligned memory, as float, and back.
            struct __align__(16) fa_merge_floats { float x, y, z, w; };
            struct __align__(16) fa_merge_words { fa_u32 x, y, z, w; };
            FA_INLINE float fa_merge_half(fa_u32 word, int high, int dtype) {
                const fa_u16 bits = (fa_u16)(high ? word >> 16 : word & 0xffffu);
                return dtype == 1 ? fa_float16_to_float(bits) : fa_bfloat16_to_float(bits);
            }
            FA_INLINE void fa_merge_load8(const void* base, long long index, int dtype, float* out) {
                if (dtype == 0) {
                    const fa_merge_floats x = ((const fa_merge_floats*)((const float*)base + index))[0];
                    const fa_merge_floats y = ((const fa_merge_floats*)((const float*)base + index))[1];
                    out[0] = x.x; out[1] = x.y; out[2] = x.z; out[3] = x.w;
                    out[4] = y.x; out[5] = y.y; out[6] = y.z; out[7] = y.w;
                    return;
                }
                const fa_merge_words v = *(const fa_merge_words*)((const fa_u16*)base + index);
                const fa_u32 words[4] = {v.x, v.y, v.z, v.w};
                #pragma unroll
                for (int i = 0; i < 8; ++i) out[i] = fa_merge_half(words[i / 2], i % 2, dtype);
            }
            FA_INLINE fa_u32 fa_merge_pack(float low, float high, int dtype) {
                const fa_u16 a = dtype == 1 ? fa_float_to_float16(low) : fa_float_to_bfloat16(low);
                const fa_u16 b = dtype == 1 ? fa_float_to_float16(high) : fa_float_to_bfloat16(high);
                return (fa_u32)a | ((fa_u32)b << 16);
            }
            FA_INLINE void fa_merge_store8(void* base, long long index, int dtype, const float* in) {
                if (dtype == 0) {
                    ((fa_merge_floats*)((float*)base + index))[0] = fa_merge_floats{in[0], in[1], in[2], in[3]};
                    ((fa_merge_floats*)((float*)base + index))[1] = fa_merge_floats{in[4], in[5], in[6], in[7]};
                    return;
                }
                *(fa_merge_words*)((fa_u16*)base + index) = fa_merge_words{
                    fa_merge_pack(in[0], in[1], dtype), fa_merge_pack(in[2], in[3], dtype),
                    fa_merge_pack(in[4], in[5], dtype), fa_merge_pack(in[6], in[7], dtype)};
            }

            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature.declaration)) {
                const int groups = Dv / \(Self.width);  // divides 32: a row's threads are in one warp
                const long long thread = (long long)blockIdx.x * \(Self.threads) + threadIdx.x;
                const long long row = thread / groups;
                const bool active = row < rowCount;
                const long long b = row / ((long long)Hq * Sq), h = row / Sq % Hq, q = row % Sq;
                const int c = (int)(thread % groups) * \(Self.width);
                float lse[\(MergeKernel.partsPerLaunch)], weight[\(MergeKernel.partsPerLaunch)];
                fa_merge merge = fa_merge_begin();
                \(each({ "lse[\($0)] = active && parts > \($0) ? L\($0)[\(row($0))] : fa_negative_infinity();" }, indent: 4))
                #pragma unroll
                for (int p = 0; p < \(MergeKernel.partsPerLaunch); ++p) fa_merge_reference(merge, lse[p]);
                #pragma unroll
                for (int p = 0; p < \(MergeKernel.partsPerLaunch); ++p) fa_merge_add(merge, lse[p]);
                #pragma unroll
                for (int p = 0; p < \(MergeKernel.partsPerLaunch); ++p) weight[p] = fa_merge_weight(merge, lse[p]);
                float sum[\(Self.width)] = {}, value[\(Self.width)];
                // Parts past `parts` are null: a poisoned row's NaN weights must not reach them.
                \(each({ p in
                    "if (active && parts > \(p) && weight[\(p)] != 0.0f) {"
                        + " fa_merge_load8(O\(p), \(element(p)), O\(p)dtype, value);"
                        + " for (int i = 0; i < \(Self.width); ++i) sum[i] += weight[\(p)] * value[i]; }"
                }, indent: 4))
                if (active) fa_merge_store8(O, b * os0 + h * os1 + q * os2 + c, Odtype, sum);
                __syncwarp();  // every thread of the row has read the parts' LSE before the merged one may replace one
                if (active && c == 0) LSE[b * ls0 + h * ls1 + q * ls2] = fa_merge_log_sum_exp(merge);
            }

            """
    }

    /// Whether every output of `parts` and `merged` suits this kernel: the head dim contiguous and a multiple of 8
    /// that divides 256, every row starting 16-byte aligned.
    static func fits(_ parts: [DeviceAttentionOutput], _ merged: DeviceAttentionOutput) -> Bool {
        let valueDim = merged.output.shape[3]
        guard valueDim % width == 0, 32 % (valueDim / width) == 0 else { return false }
        return (parts + [merged]).allSatisfy { result in
            let output = result.output
            let size = output.dtype.byteSize
            return output.strides[3] == 1 && output.address % 16 == 0
                && (0..<3).allSatisfy { output.shape[$0] == 1 || output.strides[$0] * size % 16 == 0 }
        }
    }

    /// The grid for `rows` rows of `valueDim` elements.
    static func blocks(rows: Int, valueDim: Int) -> Int {
        max(1, (rows * (valueDim / width) + threads - 1) / threads)
    }
}
