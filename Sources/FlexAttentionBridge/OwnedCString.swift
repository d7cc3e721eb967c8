#if canImport(Glibc)
import Glibc
#endif

/// A C string the library hands out and frees with the object that owns it.
final class OwnedCString: @unchecked Sendable {  // immutable after init
    let pointer: UnsafePointer<CChar>

    /// A copy of `text`.
    /// - Throws: ``BridgeError`` (out of memory) when the copy cannot be allocated.
    init(_ text: String) throws {
        guard let copy = strdup(text) else { throw BridgeError.outOfMemory(text.utf8.count + 1) }
        pointer = UnsafePointer(copy)
    }

    deinit { free(UnsafeMutablePointer(mutating: pointer)) }
}

/// The empty string handed out where there is nothing to describe (a literal: static storage, never freed).
var emptyCString: UnsafePointer<CChar> {
    UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
}
