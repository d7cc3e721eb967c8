import CFlexAttention

/// This thread's last error message, kept in C's thread-local storage (`flexattention_error_store.c`).
enum LastError {
    /// Stores `message`, cut at a character boundary to what the store holds.
    static func set(_ message: String) {
        var bytes = Array(message.utf8)
        let capacity = Int(FA_ERROR_STORE_CAPACITY) - 1
        if bytes.count > capacity {
            var end = capacity
            while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a UTF-8 sequence
            bytes.removeSubrange(end...)
        }
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { fa_error_store_set($0.baseAddress, $0.count) }
        }
    }
}

/// `fa_last_error`: the message of this thread's last failed call, "" when none failed.
@_cdecl("fa_last_error")
public func lastError() -> UnsafePointer<CChar> { fa_error_store_get() }
