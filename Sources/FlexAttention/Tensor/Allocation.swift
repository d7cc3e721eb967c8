#if canImport(Glibc)
import Glibc
#endif

/// Large allocations that fail as an error instead of stopping the process.
///
/// A Swift array whose memory cannot be had traps, so code about to make a large one asks here first. The check
/// allocates the bytes and frees them at once: it meets the same limits the array would (the address-space limit
/// of `ulimit -v`, the kernel's overcommit policy), though another thread could take the memory in between.
/// ``TensorStorage`` needs no check: its allocation itself can fail.
package enum Allocation {
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` unless `byteCount` bytes can be allocated now.
    package static func requireAvailable(_ byteCount: Int) throws {
        guard let memory = malloc(max(byteCount, 1)) else { throw FlexAttentionError.outOfMemory(byteCount: byteCount) }
        free(memory)
    }
}
