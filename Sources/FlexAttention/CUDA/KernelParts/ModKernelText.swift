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

    /// The C expression for whether a checked score is kept: `bound` (the key is inside the keys) and, in blocks the
    /// block list marks `partial`, the mask's verdict `masked` (nil: no mask).
    ///
    /// Bitwise `&` and `|`, not `&&`, `||` or `if (partial)`: the short-circuits became a branch around every score of
    /// a tile (BSSY, BRA, BSYNC in the SASS), which made a masked step's elementwise work about twice as long. The mask
    /// is therefore evaluated on every checked score; mods are total (table indices are clamped), so that is safe.
    static func keep(bound: String, masked: String?) -> String {
        masked.map { "(\(bound)) & (!partial | \($0))" } ?? bound
    }

    /// The attention kernels' call of the mask on (`query`, `key`), where one is given.
    static func maskCall(_ mask: CUDAModFunction?) -> String? {
        mask == nil ? nil : "fa_mask(b, h, query, key, Sq, Skv, mask_mod)"
    }

    /// ``keep(bound:masked:)`` for ``maskCall(_:)``, `key < Skv` the bound.
    static func keep(mask: CUDAModFunction?) -> String {
        keep(bound: "key < Skv", masked: maskCall(mask))
    }
}
