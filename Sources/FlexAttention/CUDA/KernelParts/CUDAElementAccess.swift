/// Loads and stores of one element of a tensor whose dtype is a run-time code (``DType/mergeCode``: 0 Float32,
/// 1 Float16, 2 BFloat16), through Float32: how one kernel serves every dtype where memory, not arithmetic, bounds
/// it (merging, accumulating). Needs ``CUDAPrelude``.
enum CUDAElementAccess {
    static let source = """
        // A stored element of a dtype code (DType.mergeCode: 0 float32, 1 float16, 2 bfloat16) as float, and back.
        FA_INLINE float fa_load_element(const void* base, long long index, int dtype) {
            if (dtype == 0) return ((const float*)base)[index];
            const fa_u16 bits = ((const fa_u16*)base)[index];
            return dtype == 1 ? fa_float16_to_float(bits) : fa_bfloat16_to_float(bits);
        }
        FA_INLINE void fa_store_element(void* base, long long index, int dtype, float value) {
            if (dtype == 0) ((float*)base)[index] = value;
            else ((fa_u16*)base)[index] = dtype == 1 ? fa_float_to_float16(value) : fa_float_to_bfloat16(value);
        }

        """
}
