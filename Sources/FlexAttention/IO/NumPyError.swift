/// What can be wrong with a `.npy` file or with turning its array into a tensor or a table. Each case says what is
/// wrong in its description.
public enum NumPyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The bytes do not start with the `.npy` magic string.
    case notNumPy
    /// The header version is not 1.0, 2.0 or 3.0.
    case unsupportedVersion(major: UInt8, minor: UInt8)
    /// The header is cut short or does not parse; the reason says where.
    case malformedHeader(String)
    /// Brackets in the header nest deeper than `limit`.
    case nestingTooDeep(limit: Int)
    /// The header length field is over `limit` bytes.
    case headerTooLong(length: Int, limit: Int)
    /// The header names an element type this library does not read.
    case unsupportedDType(String)
    /// The array is stored column-major.
    case fortranOrder
    /// The data after the header is shorter or longer than the shape needs.
    case dataSizeMismatch(expectedBytes: Int, actualBytes: Int)
    /// A stream (a pipe or a device) goes on after the `expectedBytes` of data the shape needs.
    case trailingData(expectedBytes: Int)
    /// The elements do not fill the shape.
    case elementCountMismatch(shape: [Int], count: Int)
    /// The array does not have the rank, element type or shape its use requires.
    case unexpectedArray(String)

    /// The error as one line of text.
    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        case .notNumPy: "not a .npy file (no \\x93NUMPY magic)"
        case let .unsupportedVersion(major, minor): "unsupported .npy format version \(major).\(minor)"
        case let .malformedHeader(reason): "corrupt .npy header: \(reason)"
        case let .nestingTooDeep(limit): "corrupt .npy header: brackets nest deeper than \(limit) levels"
        case let .headerTooLong(length, limit): "corrupt .npy header: \(length) bytes long, the limit is \(limit)"
        case let .unsupportedDType(descr):
            "unsupported dtype '\(descr)' (\(descr.hasPrefix(">") ? "big-endian; " : "")expected <f4, <f2, <i4 or <i8)"
        case .fortranOrder: "Fortran-order arrays are not supported (save C order)"
        case let .dataSizeMismatch(expected, actual):
            actual < expected
                ? "truncated .npy data: \(actual) bytes, the shape needs \(expected)"
                : "corrupt .npy data: \(actual) bytes, the shape needs \(expected)"
        case let .trailingData(expected): "corrupt .npy data: more than the \(expected) bytes the shape needs"
        case let .elementCountMismatch(shape, count): "shape \(shape) needs a different count than \(count) elements"
        case let .unexpectedArray(reason): reason
        }
    }
}

extension NumPyError {
    /// Integer elements where a tensor is wanted.
    static func notTensorDType(_ descr: String) -> NumPyError {
        .unexpectedArray("dtype \(descr) is not a tensor dtype (expected <f4 or <f2)")
    }
}
