import Glibc

/// A shared library opened with `dlopen`. It is never closed: CUDA libraries keep process-wide state, and the
/// function pointers taken from them must stay valid for the life of the process.
struct DynamicLibrary: @unchecked Sendable {  // the handle is immutable and dlsym is thread-safe
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first candidate that loads. Throws ``CUDAError/libraryNotFound(library:searched:)`` with every
    /// candidate and the loader's reason when none does.
    static func openFirst(_ candidates: [LibraryCandidate], library: String) throws -> DynamicLibrary {
        var searched = [String]()
        for candidate in candidates {
            for dependency in candidate.preload {
                // Best effort: a missing dependency shows up as the main library's own failure below.
                _ = dlopen(dependency, RTLD_NOW | RTLD_GLOBAL)
            }
            if let handle = dlopen(candidate.path, RTLD_NOW | RTLD_GLOBAL) {
                return DynamicLibrary(path: candidate.path, handle: handle)
            }
            searched.append("\(candidate.path) (\(candidate.origin)): \(lastLoaderError())")
        }
        throw CUDAError.libraryNotFound(library: library, searched: searched)
    }

    /// The address of `name`, as a C function of type `T`.
    func function<T>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let address = dlsym(handle, name) else {
            throw CUDAError.symbolMissing(library: path, symbol: name)
        }
        return unsafeBitCast(address, to: T.self)
    }

    private static func lastLoaderError() -> String {
        guard let message = dlerror() else { return "not loadable" }
        return String(cString: message)
    }
}
