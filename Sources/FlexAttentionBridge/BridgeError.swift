import CFlexAttention

/// A refusal of the C interface itself, before the library is reached: a NULL pointer, a DLPack field it does not
/// take, a size past its limits. Carries the status the call returns.
struct BridgeError: Error, CustomStringConvertible {
    let status: fa_status
    let description: String

    /// ``FA_ERROR_INVALID_ARGUMENT`` with `message`.
    static func invalid(_ message: String) -> BridgeError {
        BridgeError(status: FA_ERROR_INVALID_ARGUMENT, description: message)
    }

    /// ``FA_ERROR_OUT_OF_MEMORY`` for `byteCount` host bytes.
    static func outOfMemory(_ byteCount: Int) -> BridgeError {
        BridgeError(status: FA_ERROR_OUT_OF_MEMORY, description: "out of memory: cannot allocate \(byteCount) bytes")
    }

    /// The error for a NULL pointer where `name` must be given.
    static func null(_ name: String) -> BridgeError { invalid("\(name) is NULL") }
}
