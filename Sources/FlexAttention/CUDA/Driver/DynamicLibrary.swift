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
        if let opened = firstLoadable(candidates, searched: &searched) { return opened }
        throw CUDAError.libraryNotFound(library: library, searched: searched)
    }

    /// The first candidate that loads; every one that does not is appended to `searched` with its origin and the
    /// loader's reason, so each library's loader can throw its own error.
    static func firstLoadable(_ candidates: [LibraryCandidate], searched: inout [String]) -> DynamicLibrary? {
        for candidate in candidates {
            for dependency in candidate.preload {
                // Best effort: a missing dependency shows up as the main library's own failure below.
                _ = dlopen(dependency, RTLD_NOW | RTLD_GLOBAL)
            }
            if candidate.onlyIfLoaded {
                _ = dlerror()  // RTLD_NOLOAD may fail without setting a message; do not report an older one
                if let handle = dlopen(candidate.path, RTLD_NOW | RTLD_NOLOAD) {
                    return DynamicLibrary(path: candidate.path, handle: handle)
                }
                searched.append("\(candidate.path) (\(candidate.origin)): not loaded in this process")
                continue
            }
            if let handle = dlopen(candidate.path, RTLD_NOW | RTLD_GLOBAL) {
                return DynamicLibrary(path: candidate.path, handle: handle)
            }
            searched.append("\(candidate.path) (\(candidate.origin)): \(lastLoaderError())")
        }
        return nil
    }

    /// The address of `name`, as a C function of type `T`.
    func function<T>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let function = optionalFunction(name, as: type) else {
            throw CUDAError.symbolMissing(library: path, symbol: name)
        }
        return function
    }

    /// The address of `name` as a C function of type `T`, or nil when the library lacks it.
    func optionalFunction<T>(_ name: String, as type: T.Type = T.self) -> T? {
        dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
    }

    private static func lastLoaderError() -> String {
        guard let message = dlerror() else { return "not loadable" }
        return String(cString: message)
    }
}
