import FlexAttention

/// A NUL-terminated UTF-8 argument as a String.
/// - Throws: ``BridgeError`` (invalid argument) for NULL or bytes that are not UTF-8.
func string(_ pointer: UnsafePointer<CChar>?, named name: String) throws -> String {
    guard let pointer else { throw BridgeError.null(name) }
    guard let text = String(validatingCString: pointer) else { throw BridgeError.invalid("\(name) is not UTF-8") }
    return text
}

/// The `count` elements of a C array argument.
/// - Throws: ``BridgeError`` (invalid argument) for a count outside `0...Int32.max`, or NULL with a positive one;
///   ``FlexAttentionError/outOfMemory(byteCount:)`` when the copy cannot be allocated.
func cArray<Element>(_ pointer: UnsafePointer<Element>?, count: Int64, named name: String) throws -> [Element] {
    guard count >= 0, count <= Int64(Int32.max) else {
        throw BridgeError.invalid("\(name) has a count of \(count); it must be in 0...\(Int32.max)")
    }
    guard count > 0 else { return [] }
    guard let pointer else { throw BridgeError.invalid("\(name) is NULL with a count of \(count)") }
    try Allocation.requireAvailable(Int(count) * MemoryLayout<Element>.stride)
    return Array(UnsafeBufferPointer(start: pointer, count: Int(count)))
}

/// The first name that appears twice in `names`.
func firstDuplicate(_ names: [String]) -> String? {
    var seen: Set<String> = []
    return names.first { !seen.insert($0).inserted }
}
