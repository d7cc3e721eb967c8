/// The online softmax step of the forward kernels, in base 2, as a device function over one row of a warp's
/// accumulator tiles (the `mma.sync` m16n8 layout, which `wgmma` accumulators share).
enum OnlineSoftmax {
    /// `fa_online_softmax(s, r, rowMax, rowSum, scale)`: row `r` (0: lane / 4, 1: lane / 4 + 8) of the scores `s`
    /// (base 2 once multiplied by `scale`, which is positive; −∞ where masked) becomes exp2(s · scale − max), the
    /// product and the subtraction one FFMA, and `rowSum` (this thread's part) is updated; it returns the factor
    /// that takes the output row to the new max, which `fa_rescale_row` applies once the products reading the
    /// output have finished. Maxima and sums are trees, not chains, so the tensor cores wait less on them.
    static let source = """
        // t[0] = t[0] + ... + t[N - 1] (or the maximum) as a tree: each level folds the last N / 2 elements onto the
        // first (an odd middle one waits a level), so any N works (80-key blocks have 10 tiles). One template level
        // per step, so every loop has a constant trip count, unrolls, and t stays in registers.
        template <int N, bool MAX>
        struct fa_tree {
            static FA_INLINE void reduce(float* t) {
                constexpr int H = N / 2;
                #pragma unroll
                for (int j = 0; j < H; ++j) t[j] = MAX ? fmaxf(t[j], t[j + N - H]) : t[j] + t[j + N - H];
                fa_tree<N - H, MAX>::reduce(t);
            }
        };
        template <bool MAX>
        struct fa_tree<1, MAX> {
            static FA_INLINE void reduce(float*) {}
        };
        template <int J>
        FA_INLINE float fa_online_softmax(float (&s)[J][4], int r, float& rowMax, float& rowSum, float scale) {
            float t[J];
            #pragma unroll
            for (int j = 0; j < J; ++j) t[j] = fmaxf(s[j][2 * r], s[j][2 * r + 1]);
            fa_tree<J, true>::reduce(t);
            float blockMax = fmaxf(rowMax, t[0] * scale);
            blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 1));
            blockMax = fmaxf(blockMax, __shfl_xor_sync(0xffffffffu, blockMax, 2));
            // A row with nothing kept yet subtracts 0, not -inf, so its exponentials are 0, never NaN.
            const float reference = fa_softmax_reference(blockMax);
            const float correction = fa_exp2(rowMax - reference);
            rowMax = blockMax;
            #pragma unroll
            for (int j = 0; j < J; ++j) {
                s[j][2 * r] = fa_exp2(fmaf(s[j][2 * r], scale, -reference));
                s[j][2 * r + 1] = fa_exp2(fmaf(s[j][2 * r + 1], scale, -reference));
                t[j] = s[j][2 * r] + s[j][2 * r + 1];
            }
            fa_tree<J, false>::reduce(t);
            rowSum = rowSum * correction + t[0];
            return correction;
        }
        template <int JO>
        FA_INLINE void fa_rescale_row(float (&o)[JO][4], int r, float correction) {
            #pragma unroll
            for (int j = 0; j < JO; ++j) {
                o[j][2 * r] *= correction;
                o[j][2 * r + 1] *= correction;
            }
        }

        """
}
