import CFlexNCCL

/// The 128 bytes (`ncclUniqueId`) that name one communicator's bootstrap root: every rank of a group must be given
/// the same ID.
///
/// ``generate()`` starts the bootstrap root **in the calling process** (unless `NCCL_COMM_ID` is set), and the
/// other ranks connect to it while they create their communicators. An ID is therefore only good while the process
/// that generated it is alive: one printed by a short-lived tool and exported to the job hangs every rank. Generate
/// it in rank 0 of the job itself, and hand it over with ``shared(rank:file:timeout:)`` or the job's own channel.
public struct NCCLUniqueID: Sendable, Hashable {
    /// `NCCL_UNIQUE_ID_BYTES`.
    static let byteCount = 128

    /// Exactly ``byteCount`` bytes.
    let bytes: [UInt8]

    /// `bytes` must be ``byteCount`` long: they come from NCCL or from ``decode(hex:)``.
    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// A new ID from `ncclGetUniqueId`, loading NCCL if needed.
    ///
    /// The calling process hosts the ID's bootstrap root and must stay alive until every rank has created its
    /// communicator.
    /// - Throws: ``NCCLError`` when NCCL cannot be loaded or the call fails.
    public static func generate() throws -> NCCLUniqueID {
        let api = try NCCLLibrary.api()
        var id = flex_nccl_unique_id()
        try api.check(api.ncclGetUniqueId(&id), "ncclGetUniqueId")
        return NCCLUniqueID(bytes: withUnsafeBytes(of: id) { Array($0) })
    }

    /// Parses the form ``hex`` prints: 256 hexadecimal digits, either case; surrounding whitespace is ignored.
    /// - Throws: ``NCCLError/uniqueID(_:)`` naming the wrong length or the first character that is not a digit.
    public init(hex: String) throws {
        bytes = try Self.decode(hex: hex)
    }

    /// The ID as 256 lowercase hexadecimal digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]]
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The ID as the C struct `ncclCommInitRank` takes by value.
    var cValue: flex_nccl_unique_id {
        var id = flex_nccl_unique_id()
        withUnsafeMutableBytes(of: &id) { $0.copyBytes(from: bytes) }
        return id
    }

    static func decode(hex text: String) throws(NCCLError) -> [UInt8] {
        var trimmed = Substring(text)
        while trimmed.first?.isWhitespace == true { trimmed.removeFirst() }
        while trimmed.last?.isWhitespace == true { trimmed.removeLast() }
        guard trimmed.count == byteCount * 2 else {
            throw .uniqueID(
                "expected \(byteCount * 2) hexadecimal digits (\(byteCount) bytes), got \(trimmed.count) characters")
        }
        var values = [UInt8]()
        values.reserveCapacity(byteCount * 2)
        for (offset, character) in trimmed.enumerated() {
            guard character.isASCII, let value = character.hexDigitValue else {
                throw .uniqueID("character \(offset) (\"\(character)\") is not a hexadecimal digit")
            }
            values.append(UInt8(value))
        }
        return stride(from: 0, to: values.count, by: 2).map { values[$0] << 4 | values[$0 + 1] }
    }
}
