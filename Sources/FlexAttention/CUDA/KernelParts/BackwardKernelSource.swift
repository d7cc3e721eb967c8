/// Text the two tensor-core backward kernels share: their common parameters and the recomputation of one score's
/// probability and gradient factor (notes/cuda-backward.md has the formulas).
enum BackwardKernelSource {
    /// The parameters every backward kernel starts with, up to and including the block list's strides, with
    /// `outputs` (the gradients it writes) after `Delta`.
    static func parameters(outputs: [String]) -> String {
        """
        const fa_u16* __restrict__ Q, const fa_u16* __restrict__ K, const fa_u16* __restrict__ V,
            const fa_u16* __restrict__ dO, const float* __restrict__ LSE, const float* __restrict__ Delta,
            \(outputs.map { "fa_u16* __restrict__ \($0)" }.joined(separator: ", ")), int Hq, int Hkv, int Sq, int Skv,
            float scale, long long qs0, long long qs1, long long qs2, long long qs3, long long ks0, long long ks1,
            long long ks2, long long ks3, long long vs0, long long vs1, long long vs2, long long vs3, long long ds0,
            long long ds1, long long ds2, long long ds3, int vectorLoads, const int* __restrict__ blockStarts,
            const int* __restrict__ blockList, int maskBatchStride, int maskHeadStride
        """
    }

    /// Statements that turn the raw score `score` of (`query`, `key`) into `p` (the probability, 0 where masked) and
    /// `slope` (∂score′/∂score), given `lse2` (the row's LSE · log2 e, +∞ for rows that keep nothing) and `partial`.
    /// Leaves the scaled, unmodified score in `x` for the table gradients and `keep` for the mask's verdict, which
    /// is simply true when not `checked` (blocks the mask keeps whole, inside the keys).
    static func probability(
        score: String, lse2: String, mask: CUDAModFunction?, scoreMod: CUDAModFunction?, checked: Bool = true, indent: Int
    ) -> String {
        let modify = scoreMod == nil
            ? "const float modified = x;"
            : "const float modified = fa_score_mod(x, b, h, query, key, Sq, Skv, score_mod, &slope);"
        let applyMask = mask == nil ? "" : " && (!partial || fa_mask(b, h, query, key, Sq, Skv, mask_mod))"
        let lines = """
            const float x = \(score) * scale;
            float slope = 1.0f;
            \(modify)
            const bool keep = \(checked ? "key < Skv" + applyMask : "true");
            const float p = keep ? fa_exp2(modified * 1.4426950408889634f - \(lse2)) : 0.0f;
            """
        return lines.split(separator: "\n").joined(separator: "\n" + String(repeating: " ", count: indent))
    }
}
