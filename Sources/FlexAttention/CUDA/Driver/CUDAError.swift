/// Everything that can go wrong on the GPU path. Each case names what failed, so a message read in a log is enough
/// to act on.
public enum CUDAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A shared library (the CUDA driver or NVRTC) was not found; `searched` lists every place tried, in order, with
    /// why each failed.
    case libraryNotFound(library: String, searched: [String])
    /// A library loaded but lacks a function the library needs (an older release than supported).
    case symbolMissing(library: String, symbol: String)
    /// A CUDA driver call returned an error.
    case driver(call: String, code: Int32, name: String, message: String)
    /// A device allocation did not fit.
    case outOfMemory(call: String, bytes: Int)
    /// An NVRTC call other than compilation returned an error.
    case nvrtc(call: String, code: Int32, message: String)
    /// NVRTC rejected a kernel; `log` is its log and `source` the generated source with line numbers.
    case compilation(kernel: String, log: String, source: String)
    /// No device with this ordinal (`available` devices exist).
    case noSuchDevice(ordinal: Int, available: Int)
    /// An argument that cannot be used, with the reason.
    case invalidArgument(String)
    /// A disk-cache operation failed (reading is never fatal; this is raised only for unusable folders).
    case cache(String)

    /// The error as text a log reader can act on.
    public var description: String {
        switch self {
        case let .libraryNotFound(library, searched):
            "\(library) not found; searched, in order:\n" + searched.map { "  - \($0)" }.joined(separator: "\n")
        case let .symbolMissing(library, symbol):
            "\(library) has no function \(symbol): it is older than this library supports"
        case let .driver(call, code, name, message):
            "\(call) failed: \(name) (\(code)): \(message)"
        case let .outOfMemory(call, bytes):
            "\(call) failed: out of device memory allocating \(bytes) bytes"
        case let .nvrtc(call, code, message):
            "\(call) failed: \(message) (\(code))"
        case let .compilation(kernel, log, source):
            "NVRTC could not compile \(kernel):\n\(log)\n--- generated source ---\n\(source)"
        case let .noSuchDevice(ordinal, available):
            "no CUDA device \(ordinal): \(available) device(s) present"
        case let .invalidArgument(reason):
            reason
        case let .cache(reason):
            "kernel cache: \(reason)"
        }
    }
}
