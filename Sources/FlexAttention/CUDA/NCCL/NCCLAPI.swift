import CFlexNCCL

/// `ncclComm_t`: an opaque communicator handle.
typealias NCCLComm = OpaquePointer

/// The NCCL functions the library calls, resolved once with `dlsym`. `ncclResult_t` is `Int32`; `cudaStream_t` is
/// the driver's `CUstream` (the runtime and driver stream handles are the same thing).
struct NCCLAPI: @unchecked Sendable {  // immutable C function pointers
    /// The oldest release supported, as `ncclGetVersion` encodes it (major·10000 + minor·100 + patch).
    static let minimumVersion: Int32 = 2_18_00
    /// `ncclUint8`: transfers are byte counts, whatever the tensors hold.
    static let byteType: Int32 = 1
    /// `ncclInProgress`: a communicator still initialising or finalising, not a failure.
    static let inProgress: Int32 = 7

    let library: DynamicLibrary
    let version: Int32
    let ncclGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    /// Optional: a more specific text than the result code's, when the release has it.
    let ncclGetLastError: (@convention(c) (NCCLComm?) -> UnsafePointer<CChar>?)?
    let ncclGetUniqueId: flex_nccl_get_unique_id_fn
    let ncclCommInitRank: flex_nccl_comm_init_rank_fn
    let ncclCommInitAll: @convention(c) (UnsafeMutablePointer<NCCLComm?>, Int32, UnsafePointer<Int32>?) -> Int32
    /// Optional: without it ``ncclCommDestroy`` finalises by itself.
    let ncclCommFinalize: (@convention(c) (NCCLComm?) -> Int32)?
    let ncclCommDestroy: @convention(c) (NCCLComm?) -> Int32
    let ncclCommAbort: @convention(c) (NCCLComm?) -> Int32
    let ncclCommGetAsyncError: @convention(c) (NCCLComm?, UnsafeMutablePointer<Int32>) -> Int32
    let ncclCommCount: @convention(c) (NCCLComm?, UnsafeMutablePointer<Int32>) -> Int32
    let ncclCommCuDevice: @convention(c) (NCCLComm?, UnsafeMutablePointer<Int32>) -> Int32
    let ncclCommUserRank: @convention(c) (NCCLComm?, UnsafeMutablePointer<Int32>) -> Int32
    let ncclGroupStart: @convention(c) () -> Int32
    let ncclGroupEnd: @convention(c) () -> Int32
    let ncclSend: @convention(c) (UnsafeRawPointer?, Int, Int32, Int32, NCCLComm?, CUstream?) -> Int32
    let ncclRecv: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, Int32, NCCLComm?, CUstream?) -> Int32
    let ncclAllGather: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, NCCLComm?, CUstream?)
        -> Int32

    /// Resolves every function, checking the version first so that an old release is reported as such rather than
    /// as a missing symbol.
    init(library: DynamicLibrary) throws(NCCLError) {
        func function<T>(_ name: String) throws(NCCLError) -> T {
            guard let function: T = library.optionalFunction(name) else {
                throw .symbolMissing(library: library.path, symbol: name)
            }
            return function
        }
        self.library = library
        let getVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32 = try function("ncclGetVersion")
        let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>? = try function("ncclGetErrorString")
        var version: Int32 = 0
        let result = getVersion(&version)
        guard result == 0 else {
            let text = getErrorString(result).map { String(cString: $0) } ?? "unrecognised result"
            throw .call(function: "ncclGetVersion (\(library.path))", result: result, message: text)
        }
        guard version >= Self.minimumVersion else {
            throw .versionTooOld(
                found: "\(Self.versionString(version)) (\(library.path))", required: Self.versionString(Self.minimumVersion))
        }
        self.version = version
        ncclGetErrorString = getErrorString
        ncclGetLastError = library.optionalFunction("ncclGetLastError")
        ncclGetUniqueId = try function("ncclGetUniqueId")
        ncclCommInitRank = try function("ncclCommInitRank")
        ncclCommInitAll = try function("ncclCommInitAll")
        ncclCommFinalize = library.optionalFunction("ncclCommFinalize")
        ncclCommDestroy = try function("ncclCommDestroy")
        ncclCommAbort = try function("ncclCommAbort")
        ncclCommGetAsyncError = try function("ncclCommGetAsyncError")
        ncclCommCount = try function("ncclCommCount")
        ncclCommCuDevice = try function("ncclCommCuDevice")
        ncclCommUserRank = try function("ncclCommUserRank")
        ncclGroupStart = try function("ncclGroupStart")
        ncclGroupEnd = try function("ncclGroupEnd")
        ncclSend = try function("ncclSend")
        ncclRecv = try function("ncclRecv")
        ncclAllGather = try function("ncclAllGather")
    }

    /// Throws ``NCCLError/call(function:result:message:)`` for a failed call.
    func check(_ result: Int32, _ function: @autoclosure () -> String, comm: NCCLComm? = nil) throws(NCCLError) {
        guard result != 0 else { return }
        throw error(result, function(), comm: comm)
    }

    func error(_ result: Int32, _ function: String, comm: NCCLComm?) -> NCCLError {
        .call(function: function, result: result, message: message(for: result, comm: comm))
    }

    /// NCCL's text for `result`, then its last error, which names the cause (a peer, a socket, a CUDA call).
    func message(for result: Int32, comm: NCCLComm?) -> String {
        let text = ncclGetErrorString(result).map { String(cString: $0) } ?? "unrecognised result"
        guard let last = ncclGetLastError?(comm).map({ String(cString: $0) }), !last.isEmpty else { return text }
        return "\(text); last error: \(last)"
    }

    /// The library's version as "major.minor.patch".
    var versionString: String { Self.versionString(version) }

    static func versionString(_ code: Int32) -> String {
        "\(code / 10000).\(code / 100 % 100).\(code % 100)"
    }

    /// The `ncclResult_t` constant's name, for messages.
    static func resultName(_ result: Int32) -> String {
        let names = [
            "ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError", "ncclInvalidArgument",
            "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress", "ncclTimeout",
        ]
        return names.indices.contains(Int(result)) ? names[Int(result)] : "ncclResult \(result)"
    }
}
