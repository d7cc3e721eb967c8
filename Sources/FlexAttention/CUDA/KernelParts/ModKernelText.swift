/// How every attention kernel takes its mods: the parameters after the block list and the `fa_mod_arguments` they
/// make, so that the launchers pass one argument list to any kernel family.
enum ModKernelText {
    /// The mask's three parameters, then the score mod's three and, with `tableGradients`, `table_gradients` (one
    /// `float*` per table slot of the score mod; see notes/cuda-backward.md).
    static func parameters(mask: CUDAModFunction?, scoreMod: CUDAModFunction?, tableGradients: Bool = false) -> String {
        (mask == nil ? "" : ",\n    const long long* mask_ints, const float* mask_floats, const fa_u64* mask_tables")
            + (scoreMod == nil ? "" : ",\n    const long long* score_ints, const float* score_floats, const fa_u64* score_tables")
            + (scoreMod == nil || !tableGradients ? "" : ",\n    const fa_u64* table_gradients")
    }

    /// Declarations of `mask_arguments` and `score_arguments` from those parameters.
    static func arguments(mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        (mask == nil ? "" : "const fa_mod_arguments mask_arguments = {mask_ints, mask_floats, mask_tables};\n")
            + (scoreMod == nil ? "" : "const fa_mod_arguments score_arguments = {score_ints, score_floats, score_tables};\n")
    }

    /// Declarations of `mask_mod` and `score_mod`, the mods' per-head values, for the `b` and `h` in scope (after
    /// ``arguments(mask:scoreMod:)``).
    static func prepared(mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        [(mask, "mask"), (scoreMod, "score")].compactMap { mod, role in
            mod.map { "const \($0.name)_prepared \(role)_mod = \($0.name)_prepare(b, h, Sq, Skv, \(role)_arguments);\n" }
        }.joined()
    }
}
