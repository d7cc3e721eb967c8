/// The bytes of a `.npy` file with a hand-written header dictionary, padded the way NumPy pads it.
func npyBytes(header dictionary: String, version: UInt8 = 1, data: [UInt8] = []) -> [UInt8] {
    let text = Array(dictionary.utf8)
    let prefix = version == 1 ? 10 : 12
    let padding = (64 - (prefix + text.count + 1) % 64) % 64
    let length = text.count + padding + 1
    let lengthBytes = (0..<(prefix - 8)).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
    return [0x93] + Array("NUMPY".utf8) + [version, 0] + lengthBytes + text
        + [UInt8](repeating: 0x20, count: padding) + [0x0A] + data
}

/// The little-endian bytes of `values`.
func littleEndianBytes<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
}
