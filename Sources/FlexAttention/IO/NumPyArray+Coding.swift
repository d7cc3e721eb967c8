/// Reading and writing the `.npy` byte layout (see ``NumPyPrelude`` for the fields before the data).
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

    /// Reads a whole `.npy` file's bytes.
    /// - Throws: ``NumPyError`` when the bytes are not a `.npy` file, its header is cut short, too long, too deeply
    ///   nested or malformed, the dtype is not one of `<f4 <f2 <i4 <i8`, the array is Fortran-ordered, or the data
    ///   is shorter or longer than the shape needs.
    public init(decoding bytes: [UInt8]) throws {
        var source = NumPyMemorySource(bytes)
        let prelude = try NumPyPrelude(reading: &source)
        let data = source.rest
        guard data.count == prelude.byteCount else {
            throw NumPyError.dataSizeMismatch(expectedBytes: prelude.byteCount, actualBytes: data.count)
        }
        try self.init(prelude: prelude) { buffer in data.withUnsafeBytes { buffer.copyMemory(from: $0) } }
    }

    /// An array of the prelude's shape and type whose bytes `fill` writes into the buffer it is given.
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` when the elements cannot be allocated; what `fill`
    ///   throws.
    init(prelude: NumPyPrelude, fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        try Allocation.requireAvailable(prelude.byteCount)
        func elements<T: BitwiseCopyable>(_: T.Type) throws -> [T] {
            try [T](unsafeUninitializedCapacity: prelude.count) { buffer, initialized in
                try fill(UnsafeMutableRawBufferPointer(buffer))
                initialized = prelude.count
            }
        }
        let elements: Elements = switch prelude.elementType {
        case .float32: .float32(try elements(Float.self))
        case .float16: .float16(try elements(Float16.self))
        case .int32: .int32(try elements(Int32.self))
        case .int64: .int64(try elements(Int64.self))
        }
        try self.init(shape: prelude.shape, elements: elements)
    }

    /// The array as the bytes of a `.npy` file.
    /// - Parameter version: the format to write; a version 1.0 header that would be longer than 65535 bytes is
    ///   written as 2.0.
    public func encoded(version: FormatVersion = .v1) -> [UInt8] {
        var bytes = Self.encodedPrelude(descr: elements.descr, shape: shape, version: version)
        switch elements {
        case .float32(let values): values.withUnsafeBytes { bytes += $0 }
        case .float16(let values): values.withUnsafeBytes { bytes += $0 }
        case .int32(let values): values.withUnsafeBytes { bytes += $0 }
        case .int64(let values): values.withUnsafeBytes { bytes += $0 }
        }
        return bytes
    }

    /// The bytes of a `.npy` file up to its data, for `shape` and element type `descr` (`<f4` for example): a
    /// version 1.0 header that would be longer than 65535 bytes is written as 2.0.
    public static func encodedPrelude(descr: String, shape: [Int], version: FormatVersion = .v1) -> [UInt8] {
        let dictionary = NumPyHeader(descr: descr, fortranOrder: false, shape: shape).text
        let prefixLength = version == .v1 ? 10 : 12
        let unpadded = prefixLength + dictionary.utf8.count + 1
        let headerLength = dictionary.utf8.count + 1 + (64 - unpadded % 64) % 64
        if version == .v1 && headerLength > Int(UInt16.max) { return encodedPrelude(descr: descr, shape: shape, version: .v2) }
        var bytes = NumPyPrelude.magic + [version.rawValue, 0]
        for byte in 0..<(prefixLength - 8) { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * byte))) }
        bytes += Array(dictionary.utf8)
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: headerLength - dictionary.utf8.count - 1)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
