/// The bytes of one disk-cache file: a fixed header, then the cubin.
///
///     "FLXKCUBN"  8 bytes   magic
///     version     4 bytes   little-endian, ``formatVersion``
///     length      8 bytes   little-endian, bytes of payload
///     checksum   32 bytes   SHA-256 of the payload
///     payload
///
/// A file that is short, long, of another version or whose payload does not hash to its checksum decodes to nil,
/// and the cache compiles the kernel again.
enum KernelCacheEntry {
    static let magic = Array("FLXKCUBN".utf8)
    static let formatVersion: UInt32 = 1
    static let headerSize = 8 + 4 + 8 + 32

    static func encode(_ payload: [UInt8]) -> [UInt8] {
        var bytes = magic
        bytes += littleEndianBytes(UInt64(formatVersion), count: 4)
        bytes += littleEndianBytes(UInt64(payload.count), count: 8)
        bytes += SHA256.hash(payload)
        bytes += payload
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic,
            readLittleEndian(bytes[8..<12]) == UInt64(formatVersion),
            readLittleEndian(bytes[12..<20]) == UInt64(bytes.count - headerSize)
        else { return nil }
        let payload = Array(bytes[headerSize...])
        return SHA256.hash(payload) == Array(bytes[20..<52]) ? payload : nil
    }

    private static func littleEndianBytes(_ value: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    private static func readLittleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}
