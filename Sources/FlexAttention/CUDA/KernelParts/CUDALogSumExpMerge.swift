/// ``LogSumExpMerge`` written for the device, in Float32: the rules every kernel that merges rows by their
/// log-sum-exps follows (attention sinks, the merge of partial results). ``LogSumExpMerge`` stays the one definition;
/// this is its transcription, and the GPU checks compare the kernels against host code that uses it.
enum CUDALogSumExpMerge {
    static let source = """
        // LogSumExpMerge (Attention/AttentionOutput+Merging.swift) in Float32. With m the parts' largest LSE,
        // LSE = m + log Σᵢ exp(LSEᵢ − m) and part i weighs exp(LSEᵢ − m) / Σ. A NaN or +∞ part makes the row NaN
        // (every weight NaN); with every part −∞ the row keeps nothing (LSE −∞, every weight 0). Give every part to
        // fa_merge_reference first, then to fa_merge_add. A part of weight 0 adds nothing: its O is not read.
        struct fa_merge { float maximum, total; bool poisoned; };
        FA_INLINE float fa_not_a_number() { return __uint_as_float(0x7fffffffu); }
        FA_INLINE fa_merge fa_merge_begin() { return fa_merge{fa_negative_infinity(), 0.0f, false}; }
        FA_INLINE void fa_merge_reference(fa_merge& merge, float part) {
            if (!(part < __uint_as_float(0x7f800000u))) merge.poisoned = true;  // NaN or +∞
            else merge.maximum = fmaxf(merge.maximum, part);
        }
        FA_INLINE void fa_merge_add(fa_merge& merge, float part) {
            if (merge.maximum != fa_negative_infinity()) merge.total += expf(part - merge.maximum);
        }
        FA_INLINE float fa_merge_log_sum_exp(const fa_merge& merge) {
            if (merge.poisoned) return fa_not_a_number();
            return merge.maximum == fa_negative_infinity() ? merge.maximum : merge.maximum + logf(merge.total);
        }
        FA_INLINE float fa_merge_weight(const fa_merge& merge, float part) {
            if (merge.poisoned) return fa_not_a_number();
            return merge.maximum == fa_negative_infinity() ? 0.0f : expf(part - merge.maximum) / merge.total;
        }

        """
}
