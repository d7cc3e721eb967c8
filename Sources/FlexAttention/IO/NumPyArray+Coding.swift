/// The `.npy` byte layout: magic `\x93NUMPY`, major and minor version bytes, the header length (2 bytes
/// little-endian in version 1.0, 4 bytes in 2.0 and 3.0), the header dictionary padded with spaces and a newline so
/// that the data starts on a 64-byte boundary, then the raw elements.
///
/// Elements are copied as raw bytes: every host the library supports (x86-64, aarch64) is little-endian, so the
/// native (`=`) and not-applicable (`|`) byte-order marks read as little-endian and big-endian (`>`) is refused.
extension NumPyArray {
    /// A `.npy` format version.
    public enum FormatVersion: UInt8, Sendable, CaseIterable {
        /// 1.0: headers up to 65535 bytes, Latin-1.
        case v1 = 1
        /// 2.0: headers up to 4 GiB, Latin-1.
        case v2 = 2
        /// 3.0: like 2.0 with a UTF-8 header.
        case v3 = 3
    }

    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads a whole `.npy` file's bytes.
    /// - Throws: ``NumPyError`` when the bytes are not a `.npy` file, its header is cut short or malformed, the
    ///   dtype is not one of `<f4 <f2 <i4 <i8`, the array is Fortran-ordered, or the data is shorter or longer than
    ///   the shape needs.
    public init(decoding bytes: [UInt8]) throws {
        guard bytes.starts(with: Self.magic) else { throw NumPyError.notNumPy }
        guard bytes.count >= 8 else { throw NumPyError.malformedHeader("the file ends inside the version") }
        let (major, minor) = (bytes[6], bytes[7])
        guard minor == 0, let version = FormatVersion(rawValue: major) else {
            throw NumPyError.unsupportedVersion(major: major, minor: minor)
        }
        let lengthBytes = version == .v1 ? 2 : 4
        let headerStart = 8 + lengthBytes
        guard bytes.count >= headerStart else { throw NumPyError.malformedHeader("the file ends inside its length") }
        let headerLength = bytes[8..<headerStart].reversed().reduce(0) { $0 << 8 | Int($1) }
        let dataStart = headerStart + headerLength
        guard bytes.count >= dataStart else {
            throw NumPyError.malformedHeader("it should have \(headerLength) bytes, the file ends after \(bytes.count - headerStart)")
        }
        let header = try NumPyHeader(parsing: Self.headerText(bytes[headerStart..<dataStart], version: version))
        guard !header.fortranOrder else { throw NumPyError.fortranOrder }
        guard let count = Self.elementCount(header.shape) else {
            throw NumPyError.malformedHeader("shape \(header.shape) is too large")
        }
        let data = bytes[dataStart...]
        let elements: Elements
        switch Self.littleEndianDescr(header.descr) {
        case "<f4": elements = .float32(try Self.load(data, count: count))
        case "<f2": elements = .float16(try Self.load(data, count: count))
        case "<i4": elements = .int32(try Self.load(data, count: count))
        case "<i8": elements = .int64(try Self.load(data, count: count))
        default: throw NumPyError.unsupportedDType(header.descr)
        }
        try self.init(shape: header.shape, elements: elements)
    }

    /// The array as the bytes of a `.npy` file.
    /// - Parameter version: the format to write; a version 1.0 header that would be longer than 65535 bytes is
    ///   written as 2.0.
    public func encoded(version: FormatVersion = .v1) -> [UInt8] {
        let dictionary = NumPyHeader(descr: elements.descr, fortranOrder: false, shape: shape).text
        let prefixLength = version == .v1 ? 10 : 12
        let unpadded = prefixLength + dictionary.utf8.count + 1
        let headerLength = dictionary.utf8.count + 1 + (64 - unpadded % 64) % 64
        if version == .v1 && headerLength > Int(UInt16.max) { return encoded(version: .v2) }
        var bytes = Self.magic + [version.rawValue, 0]
        for byte in 0..<(prefixLength - 8) { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * byte))) }
        bytes += Array(dictionary.utf8)
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: headerLength - dictionary.utf8.count - 1)
        bytes.append(UInt8(ascii: "\n"))
        switch elements {
        case .float32(let values): values.withUnsafeBytes { bytes += $0 }
        case .float16(let values): values.withUnsafeBytes { bytes += $0 }
        case .int32(let values): values.withUnsafeBytes { bytes += $0 }
        case .int64(let values): values.withUnsafeBytes { bytes += $0 }
        }
        return bytes
    }

    /// Versions 1.0 and 2.0 store the dictionary in Latin-1, 3.0 in UTF-8.
    private static func headerText(_ bytes: ArraySlice<UInt8>, version: FormatVersion) throws -> String {
        guard version == .v3 else { return String(bytes.map { Character(Unicode.Scalar($0)) }) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw NumPyError.malformedHeader("a version 3.0 header is not UTF-8")
        }
        return text
    }

    /// `descr` with a native or not-applicable byte order written as little-endian; other text unchanged.
    private static func littleEndianDescr(_ descr: String) -> String {
        guard let mark = descr.first, mark == "=" || mark == "|" else { return descr }
        return "<" + descr.dropFirst()
    }

    /// Exactly `count` elements of `T` from `data`.
    private static func load<T: BitwiseCopyable>(_ data: ArraySlice<UInt8>, count: Int) throws -> [T] {
        let (expected, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow, data.count == expected else {
            throw NumPyError.dataSizeMismatch(expectedBytes: overflow ? Int.max : expected, actualBytes: data.count)
        }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }
}
