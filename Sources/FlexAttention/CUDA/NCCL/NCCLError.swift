/// Everything that can go wrong loading NCCL or communicating through it. Each case names what failed, so a message
/// read in a log is enough to act on.
public enum NCCLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// NCCL was not found; `searched` lists every place tried, in order, with why each failed.
    case libraryNotFound(searched: [String])
    /// The library loaded but lacks a function this library calls.
    case symbolMissing(library: String, symbol: String)
    /// The NCCL found is older than the oldest release supported.
    case versionTooOld(found: String, required: String)
    /// An NCCL call returned an error; `message` is NCCL's text for `result` and its last error.
    case call(function: String, result: Int32, message: String)
    /// A communicator reported an error from work already queued (`ncclCommGetAsyncError`).
    case asyncError(rank: Int, result: Int32, message: String)
    /// A unique ID could not be read: bad hex, an unreadable or incomplete file, or no file before the timeout.
    case uniqueID(String)
    /// An argument that cannot be used, with the reason.
    case invalidArgument(String)
    /// The group is unusable after an earlier failure or ``ContextParallelGroup/abort()``; the text is the first
    /// failure's.
    case broken(String)

    /// The error as text a log reader can act on.
    public var description: String {
        switch self {
        case let .libraryNotFound(searched):
            "NCCL (libnccl.so.2) not found; install the nvidia-nccl-cu12 or nvidia-nccl-cu13 wheel, or set "
                + "FLEXATTENTION_NCCL to the library or its folder. Searched, in order:\n"
                + searched.map { "  - \($0)" }.joined(separator: "\n")
        case let .symbolMissing(library, symbol):
            "\(library) has no function \(symbol): it is not an NCCL release this library supports"
        case let .versionTooOld(found, required):
            "NCCL \(found) is too old: \(required) or newer is required (set FLEXATTENTION_NCCL to a newer libnccl.so.2)"
        case let .call(function, result, message):
            "\(function) failed: \(NCCLAPI.resultName(result)) (\(result)): \(message)"
        case let .asyncError(rank, result, message):
            "NCCL communicator of rank \(rank) failed in queued work: \(NCCLAPI.resultName(result)) (\(result)): "
                + "\(message); the group is unusable, create a new one"
        case let .uniqueID(reason):
            "NCCL unique ID: \(reason)"
        case let .invalidArgument(reason):
            reason
        case let .broken(reason):
            "the context-parallel group is unusable after an earlier failure (\(reason)); create a new group"
        }
    }
}
