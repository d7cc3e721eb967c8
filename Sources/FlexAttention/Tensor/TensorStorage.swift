#if canImport(Glibc)
import Glibc
#endif

/// Bytes behind one or more ``Tensor`` views.
///
/// Storage made by the library owns its memory (16-byte aligned, freed with the last reference). Storage that
/// wraps memory another library owns leaves it alone. Views share storage: writing through one view is seen by
/// every other, and the library never writes a tensor the caller handed in as an input. Concurrent writes to the
/// same bytes from several threads are the caller's to avoid.
public final class TensorStorage: @unchecked Sendable {
    /// Start of the bytes.
    public let baseAddress: UnsafeMutableRawPointer
    /// Number of bytes.
    public let byteCount: Int
    private let ownsMemory: Bool

    /// Allocates `byteCount` zeroed bytes. Large buffers come straight from the kernel's zeroed pages (calloc),
    /// so they are not cleared twice.
    /// - Returns: `nil` when the memory cannot be had.
    public init?(zeroedByteCount byteCount: Int) {
        guard let memory = calloc(max(byteCount, 1), 1) else { return nil }
        self.byteCount = byteCount
        baseAddress = memory
        ownsMemory = true
    }

    /// Wraps memory owned elsewhere; the caller keeps it alive and valid for as long as any view uses it.
    public init(unowned baseAddress: UnsafeMutableRawPointer, byteCount: Int) {
        self.baseAddress = baseAddress
        self.byteCount = byteCount
        ownsMemory = false
    }

    deinit {
        if ownsMemory { free(baseAddress) }
    }
}
