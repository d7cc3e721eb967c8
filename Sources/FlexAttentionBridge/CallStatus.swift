import CFlexAttention
import FlexAttention

/// Runs the body of a C entry point: ``FA_OK`` when it returns, else the status its error maps to, with the error's
/// message stored as this thread's `fa_last_error()`. Bodies write their out-parameters last, so a failed call has
/// changed nothing the caller sees.
func reportingStatus(_ body: () throws -> Void) -> fa_status {
    do {
        try body()
        return FA_OK
    } catch {
        LastError.set(oneLine("\(error)"))
        return status(of: error)
    }
}

/// The status a library error is reported as.
func status(of error: any Error) -> fa_status {
    switch error {
    case let error as BridgeError:
        return error.status
    case let error as FlexAttentionError:
        switch error {
        case .outOfMemory: return FA_ERROR_OUT_OF_MEMORY
        case .unsupportedHeadDimension: return FA_ERROR_UNSUPPORTED
        default: return FA_ERROR_INVALID_ARGUMENT
        }
    case is ModError:
        return FA_ERROR_MOD
    case let error as CUDAError:
        switch error {
        case .outOfMemory: return FA_ERROR_OUT_OF_MEMORY
        case .invalidArgument: return FA_ERROR_INVALID_ARGUMENT
        // No driver, or a driver without devices: a machine without CUDA.
        case .libraryNotFound(library: "CUDA driver", _), .noSuchDevice(_, available: 0): return FA_ERROR_UNSUPPORTED
        case .noSuchDevice: return FA_ERROR_INVALID_ARGUMENT
        default: return FA_ERROR_CUDA
        }
    default:
        return FA_ERROR_INVALID_ARGUMENT
    }
}

/// `text` on one line: library messages may quote user text holding newlines, and CUDA's list the places searched.
private func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).map { $0.trimmingPrefix(while: \.isWhitespace) }.joined(separator: " ")
}
