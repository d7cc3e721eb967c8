/// A NUL-terminated UTF-8 argument as a String.
/// - Throws: ``BridgeError`` (invalid argument) for NULL or bytes that are not UTF-8.
func string(_ pointer: UnsafePointer<CChar>?, named name: String) throws -> String {
    guard let pointer else { throw BridgeError.null(name) }
    guard let text = String(validatingCString: pointer) else { throw BridgeError.invalid("\(name) is not UTF-8") }
    return text
}

/// The `count` elements of a C array argument.
/// - Throws: ``BridgeError`` (invalid argument) for a negative count, or NULL with a positive one.
func cArray<Element>(_ pointer: UnsafePointer<Element>?, count: Int64, named name: String) throws -> [Element] {
    guard count >= 0 else { throw BridgeError.invalid("\(name) has a negative count, \(count)") }
    guard count > 0 else { return [] }
    guard let pointer else { throw BridgeError.invalid("\(name) is NULL with a count of \(count)") }
    return Array(UnsafeBufferPointer(start: pointer, count: Int(count)))
}

/// The first name that appears twice in `names`.
func firstDuplicate(_ names: [String]) -> String? {
    var seen: Set<String> = []
    return names.first { !seen.insert($0).inserted }
}
