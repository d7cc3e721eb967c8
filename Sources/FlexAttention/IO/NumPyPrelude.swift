/// What comes before a `.npy` file's data: the magic `\x93NUMPY`, major and minor version bytes, the header length
/// (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0) and the header dictionary, padded with spaces and
/// a newline so that the data starts on a 64-byte boundary.
///
/// It is read a field at a time and checked before the next is read: a file that is not `.npy` costs 8 bytes, a
/// header at most ``NumPyHeader/maximumLength``, and the size of the data is known, overflow-checked, before any
/// of it is read or allocated.
struct NumPyPrelude {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    let shape: [Int]
    let elementType: NumPyElementType
    /// Elements the shape holds.
    let count: Int
    /// Bytes of data that must follow the header.
    let byteCount: Int

    /// - Throws: ``NumPyError`` when the bytes are not a `.npy` file, its header is cut short, too long, too deeply
    ///   nested or malformed, the dtype is not one of `<f4 <f2 <i4 <i8`, the array is Fortran-ordered, or the shape
    ///   holds more bytes than memory can address.
    init(reading source: inout some NumPyByteSource) throws {
        let start = try source.read(8)
        guard start.starts(with: Self.magic) else { throw NumPyError.notNumPy }
        guard start.count == 8 else { throw NumPyError.malformedHeader("the file ends inside the version") }
        guard start[7] == 0, let version = NumPyArray.FormatVersion(rawValue: start[6]) else {
            throw NumPyError.unsupportedVersion(major: start[6], minor: start[7])
        }
        let lengthBytes = try source.read(version == .v1 ? 2 : 4)
        guard lengthBytes.count == (version == .v1 ? 2 : 4) else {
            throw NumPyError.malformedHeader("the file ends inside its length")
        }
        let headerLength = lengthBytes.reversed().reduce(0) { $0 << 8 | Int($1) }
        guard headerLength <= NumPyHeader.maximumLength else {
            throw NumPyError.headerTooLong(length: headerLength, limit: NumPyHeader.maximumLength)
        }
        let headerBytes = try source.read(headerLength)
        guard headerBytes.count == headerLength else {
            throw NumPyError.malformedHeader(
                "it should have \(headerLength) bytes, the file ends after \(headerBytes.count)")
        }
        let header = try NumPyHeader(parsing: Self.headerText(headerBytes, version: version))
        guard !header.fortranOrder else { throw NumPyError.fortranOrder }
        guard let count = NumPyArray.elementCount(header.shape) else {
            throw NumPyError.malformedHeader("shape \(header.shape) is too large")
        }
        guard let elementType = NumPyElementType(descr: header.descr) else {
            throw NumPyError.unsupportedDType(header.descr)
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: elementType.byteSize)
        guard !overflow else { throw NumPyError.malformedHeader("shape \(header.shape) is too large") }
        shape = header.shape
        self.elementType = elementType
        self.count = count
        self.byteCount = byteCount
    }

    /// Versions 1.0 and 2.0 store the dictionary in Latin-1, 3.0 in UTF-8.
    private static func headerText(_ bytes: [UInt8], version: NumPyArray.FormatVersion) throws -> String {
        guard version == .v3 else { return String(bytes.map { Character(Unicode.Scalar($0)) }) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw NumPyError.malformedHeader("a version 3.0 header is not UTF-8")
        }
        return text
    }
}

/// The element types read from `.npy` files.
///
/// Elements are copied as raw bytes: every host the library supports (x86-64, aarch64) is little-endian, so the
/// native (`=`) and not-applicable (`|`) byte-order marks read as little-endian and big-endian (`>`) is refused.
enum NumPyElementType {
    case float32, float16, int32, int64

    /// `descr` with a native or not-applicable byte order read as little-endian; `nil` for any other type.
    init?(descr: String) {
        let littleEndian = descr.first == "=" || descr.first == "|" ? "<" + descr.dropFirst() : descr
        switch littleEndian {
        case "<f4": self = .float32
        case "<f2": self = .float16
        case "<i4": self = .int32
        case "<i8": self = .int64
        default: return nil
        }
    }

    /// NumPy's name for it, little-endian.
    var descr: String {
        switch self {
        case .float32: "<f4"
        case .float16: "<f2"
        case .int32: "<i4"
        case .int64: "<i8"
        }
    }

    var byteSize: Int {
        switch self {
        case .float32, .int32: 4
        case .float16: 2
        case .int64: 8
        }
    }
}
