/// Text the tensor-core backward kernels (`mma.sync` and Hopper) share: the recomputation of one score's
/// probability and gradient factor (notes/cuda-backward.md has the formulas).
enum BackwardKernelSource {
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
        let lines = """
            const float x = \(score) * scale;
            float slope = 1.0f;
            \(modify)
            const bool keep = \(checked ? ModKernelText.keep(mask: mask) : "true");
            const float p = keep ? fa_exp2(modified * 1.4426950408889634f - \(lse2)) : 0.0f;
            """
        return lines.split(separator: "\n").joined(separator: "\n" + String(repeating: " ", count: indent))
    }

    /// Without a score mod: `p` from the raw score `score` with the scale folded into the exponent (one FFMA), and
    /// `gradient` (dP on entry) replaced by dS = p (dP − `delta`) with no guard for p = 0, since the inputs are finite
    /// (``Attention`` scans them) and a masked score's dP is then finite too. Checks bounds and the mask when `checked`.
    static func plainScoreGradient(
        score: String, gradient: String, lse2: String, delta: String, mask: CUDAModFunction?, checked: Bool, indent: Int
    ) -> String {
        let exponent = "fa_exp2(fmaf(\(score), scale * 1.4426950408889634f, -\(lse2)))"
        let lines = """
            const float p = \(checked ? "\(ModKernelText.keep(mask: mask)) ? \(exponent) : 0.0f" : exponent);
            \(score) = p;
            \(gradient) = p * (\(gradient) - \(delta));
            """
        return lines.split(separator: "\n").joined(separator: "\n" + String(repeating: " ", count: indent))
    }
}
