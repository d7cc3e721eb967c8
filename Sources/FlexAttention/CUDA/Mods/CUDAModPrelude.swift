/// The helpers every emitted mod calls, matching the CPU evaluator (``ModTileMachine``) operation by operation:
/// Int arithmetic wraps (done on unsigned values, where C++ defines it), Int `/` and `%` round toward −∞ with 0 for
/// a zero divisor, Float arithmetic is rounded per operation (`__f*_rn` forbids fusing into an fma, which the CPU
/// does not do), min and max pick the second operand when the first is NaN, table indices are clamped.
///
/// Float `/`, exp, log and tanh are correctly rounded library calls, except in kernels that define
/// `FA_FAST_MODS` first (``fastModsDefine``): the 16-bit tensor-core kernels, whose P is rounded to 8 or 11 bits
/// anyway. There they are the hardware's approximations (a few ulp; tanh from `ex2`, within 2e-7 absolute), which
/// cost a fraction of the library versions: the soft-capping forward runs half again as fast.
enum CUDAModPrelude {
    /// Put before ``source`` to select the fast transcendentals.
    static let fastModsDefine = "#define FA_FAST_MODS\n"

    static let source = """
        // Mods: run-time values of one mod. Extents of table t are ints[table_extents + 3t ...].
        struct fa_mod_arguments { const long long* ints; const float* floats; const fa_u64* tables; };
        FA_INLINE long long fa_iadd(long long x, long long y) { return (long long)((fa_u64)x + (fa_u64)y); }
        FA_INLINE long long fa_isub(long long x, long long y) { return (long long)((fa_u64)x - (fa_u64)y); }
        FA_INLINE long long fa_imul(long long x, long long y) { return (long long)((fa_u64)x * (fa_u64)y); }
        FA_INLINE long long fa_ineg(long long x) { return (long long)(0ull - (fa_u64)x); }
        FA_INLINE long long fa_iabs(long long x) { return x < 0 ? fa_ineg(x) : x; }
        FA_INLINE long long fa_imin(long long x, long long y) { return x <= y ? x : y; }
        FA_INLINE long long fa_imax(long long x, long long y) { return x >= y ? x : y; }
        // y == -1 is the one quotient that overflows (LLONG_MIN / -1): it wraps, as on the CPU.
        FA_INLINE long long fa_idiv(long long x, long long y) {
            if (y == 0) return 0;
            if (y == -1) return fa_ineg(x);
            const long long q = x / y, r = x % y;
            return (r != 0 && ((r < 0) != (y < 0))) ? q - 1 : q;
        }
        FA_INLINE long long fa_imod(long long x, long long y) {
            if (y == 0 || y == -1) return 0;
            const long long r = x % y;
            return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        }
        FA_INLINE float fa_fmin(float x, float y) { return x <= y ? x : y; }
        FA_INLINE float fa_fmax(float x, float y) { return x >= y ? x : y; }
        FA_INLINE float fa_fabs(float x) { return x < 0.0f ? -x : x; }
        FA_INLINE float fa_fmod(float x, float y) { return __fsub_rn(x, __fmul_rn(floorf(__fdiv_rn(x, y)), y)); }
        #ifdef FA_FAST_MODS
        FA_INLINE float fa_fdiv(float x, float y) { return __fdividef(x, y); }
        FA_INLINE float fa_expf(float x) { return __expf(x); }
        FA_INLINE float fa_logf(float x) { return __logf(x); }
        // 1 - 2 / (e^2|x| + 1) with ex2, an odd polynomial below 0.125 where that form would cancel.
        FA_INLINE float fa_tanhf(float x) {
            const float a = fabsf(x), a2 = a * a;
            float e;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(2.8853900817779268f * a));
            const float t = a < 0.125f ? a * (1.0f + a2 * (-0.33333333f + a2 * 0.13333333f))
                                       : 1.0f - __fdividef(2.0f, e + 1.0f);
            return copysignf(t, x);
        }
        #else
        FA_INLINE float fa_fdiv(float x, float y) { return __fdiv_rn(x, y); }
        FA_INLINE float fa_expf(float x) { return expf(x); }
        FA_INLINE float fa_logf(float x) { return logf(x); }
        FA_INLINE float fa_tanhf(float x) { return tanhf(x); }
        #endif
        FA_INLINE long long fa_clamp_index(long long index, long long extent) {
            return index < 0 ? 0 : (index >= extent ? extent - 1 : index);
        }

        """
}
