/// The first part of every generated kernel: fixed-width types, 16-bit float conversions and small helpers.
///
/// It includes no header. NVRTC ships without `cuda_fp16.h` and `cuda_bf16.h`, and CI compiles with only the NVRTC
/// library installed, so conversions are single PTX instructions (`cvt`, sm_80 and later) and bit moves.
enum CUDAPrelude {
    static let source = """
        // FlexAttention generated kernel. Header-free: compiles with NVRTC alone.
        typedef unsigned short fa_u16;
        typedef unsigned int fa_u32;
        typedef unsigned long long fa_u64;
        #define FA_INLINE __device__ __forceinline__

        // bfloat16 is the upper half of a float: widening is a shift, narrowing rounds to nearest even.
        FA_INLINE float fa_bfloat16_to_float(fa_u16 bits) { return __uint_as_float(((fa_u32)bits) << 16); }
        FA_INLINE fa_u16 fa_float_to_bfloat16(float value) {
            fa_u16 bits;
            asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
            return bits;
        }
        FA_INLINE float fa_float16_to_float(fa_u16 bits) {
            float value;
            asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
            return value;
        }
        FA_INLINE fa_u16 fa_float_to_float16(float value) {
            fa_u16 bits;
            asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
            return bits;
        }
        FA_INLINE float fa_negative_infinity() { return __uint_as_float(0xff800000u); }
        // 2^x in one instruction (MUFU.EX2), the softmax's exponential.
        FA_INLINE float fa_exp2(float x) {
            float y;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
            return y;
        }
        FA_INLINE long long fa_global_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }

        // A block list's line (CUDABlockList): steps begin ..< end index `entries`, each `block << 1 | partial`.
        // Without a list (no mask) a line is all `blocks` blocks, none partial.
        struct fa_block_range { int begin, end; };
        FA_INLINE fa_block_range fa_block_range_of(const int* starts, const int* entries, int line, int blocks) {
            return entries ? fa_block_range{starts[line], starts[line + 1]} : fa_block_range{0, blocks};
        }
        FA_INLINE int fa_block_entry(const int* entries, int step) { return entries ? entries[step] : step * 2; }

        // The online softmax in base 2. A row's reference is its running maximum, or 0 while every score so far is
        // −∞ (so that 2^(score − reference) is 0, not NaN); its natural-log LSE is −∞ when it keeps nothing.
        FA_INLINE float fa_softmax_reference(float maximum) { return maximum == fa_negative_infinity() ? 0.0f : maximum; }
        FA_INLINE float fa_log_sum_exp(float maximum, float sum) {
            return sum > 0.0f ? (maximum + log2f(sum)) * 0.6931471805599453f : fa_negative_infinity();
        }

        """
}

extension DType {
    /// The C type one element is stored as in generated kernels.
    var cudaStorageType: String {
        switch self {
        case .float32: "float"
        case .float16, .bfloat16: "fa_u16"
        }
    }

    /// A CUDA expression widening stored `element` to float.
    func cudaToFloat(_ element: String) -> String {
        switch self {
        case .float32: element
        case .float16: "fa_float16_to_float(\(element))"
        case .bfloat16: "fa_bfloat16_to_float(\(element))"
        }
    }

    /// A CUDA expression narrowing float `value` to the stored type.
    func cudaFromFloat(_ value: String) -> String {
        switch self {
        case .float32: value
        case .float16: "fa_float_to_float16(\(value))"
        case .bfloat16: "fa_float_to_bfloat16(\(value))"
        }
    }
}
