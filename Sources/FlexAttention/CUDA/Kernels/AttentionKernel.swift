/// A generated attention kernel together with how it is launched: the launchers (``CUDAForward``,
/// ``CUDABackward``) pick one kernel family per call (tensor cores for 16-bit inputs with head dims that are
/// multiples of 16, CUDA cores otherwise) and drive them all alike.
///
/// Every attention kernel of one role takes the same parameter list, so the launcher builds one argument list
/// whatever the family; the block list it uploads uses the kernel's own ``queryBlock`` and ``keyBlock``.
protocol AttentionKernel: GeneratedKernel {
    /// Threads per CTA (one dimension).
    var threads: Int { get }
    /// Dynamic shared memory per CTA, in bytes.
    var sharedMemoryBytes: Int { get }
    /// Query rows per block-mask block.
    var queryBlock: Int { get }
    /// Keys per block-mask block.
    var keyBlock: Int { get }
}

/// The part of a kernel's name that tells its mods apart: a hash of each one's emitted definition.
enum ModTags {
    static func suffix(mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        func tag(_ mod: CUDAModFunction?, _ letter: String) -> String {
            mod.map { "_\(letter)" + hexString(SHA256.hash(Array($0.definition.utf8))).prefix(12) } ?? ""
        }
        return tag(mask, "m") + tag(scoreMod, "s")
    }
}
