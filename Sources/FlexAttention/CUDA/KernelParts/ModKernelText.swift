/// How every attention kernel reads its mods: the `fa_mod_arguments` its mod parameters
/// (``AttentionSignatures``) make, and the mods' per-head values.
enum ModKernelText {
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
