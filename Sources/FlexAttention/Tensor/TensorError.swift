/// Everything that can be wrong with the tensors or options handed to the library. Each case says what is wrong
/// in its description; when one is thrown nothing has been computed or written.
public enum FlexAttentionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A tensor has the wrong number of dimensions.
    case wrongRank(tensor: String, expected: Int, actual: Int)
    /// A dimension is zero or negative.
    case nonPositiveDimension(tensor: String, shape: [Int])
    /// Two tensors disagree on a dimension they must share.
    case mismatchedDimension(name: String, expected: Int, actual: Int, tensor: String)
    /// The query heads are not a multiple of the key/value heads.
    case headsNotDivisible(queryHeads: Int, keyValueHeads: Int)
    /// Tensors that must share a dtype do not.
    case mixedDTypes(expected: DType, actual: DType, tensor: String)
    /// A view's shape, strides and offset reach outside its buffer.
    case viewOutOfBounds(tensor: String, detail: String)
    /// The element count of supplied data does not match the shape.
    case elementCountMismatch(expected: Int, actual: Int)
    /// The scale is not a finite number.
    case invalidScale(Float)
    /// The head dimension is outside the supported range.
    case unsupportedHeadDimension(Int, supported: ClosedRange<Int>)
    /// An option or argument that is not valid, with the reason.
    case invalidArgument(String)
    /// A buffer of `byteCount` bytes could not be allocated.
    case outOfMemory(byteCount: Int)
    /// An axis number is not one of the tensor's axes (`0..<rank`).
    case axisOutOfRange(axis: Int, rank: Int)
    /// A range of indices along an axis starts below 0 or ends past that axis's extent.
    case rangeOutOfBounds(range: Range<Int>, axis: Int, extent: Int)
    /// Two tensors that must have the same shape do not.
    case shapeMismatch(expected: [Int], actual: [Int], tensor: String)
    /// An operation that reinterprets memory needs a row-major contiguous view and got strides that are not.
    case notContiguous(shape: [Int], strides: [Int])
    /// A KV cache's page table names a page outside its pool.
    case pageOutOfRange(sequence: Int, entry: Int, page: Int, pageCount: Int)
    /// A sequence of a paged KV cache holds tokens in a part of its table that has no page assigned.
    case unassignedPage(sequence: Int, entry: Int)
    /// Appending would take a sequence past what its cache can hold.
    case cacheFull(sequence: Int, length: Int, capacity: Int)
    /// Appending needs more pages than the pool has free.
    case outOfPages(needed: Int, free: Int)

    /// What is wrong, as one line of text.
    public var description: String {
        switch self {
        case let .wrongRank(tensor, expected, actual):
            "\(tensor) must have \(expected) dimensions, got \(actual)"
        case let .nonPositiveDimension(tensor, shape):
            "\(tensor) has a zero or negative dimension: shape \(shape)"
        case let .mismatchedDimension(name, expected, actual, tensor):
            "\(tensor) has \(name) = \(actual), expected \(expected)"
        case let .headsNotDivisible(queryHeads, keyValueHeads):
            "query heads (\(queryHeads)) must be a multiple of key/value heads (\(keyValueHeads))"
        case let .mixedDTypes(expected, actual, tensor):
            "\(tensor) has dtype \(actual), expected \(expected) like the other inputs"
        case let .viewOutOfBounds(tensor, detail):
            "\(tensor) reaches outside its buffer: \(detail)"
        case let .elementCountMismatch(expected, actual):
            "expected \(expected) elements for the shape, got \(actual)"
        case let .invalidScale(scale):
            "scale must be a finite number, got \(scale)"
        case let .unsupportedHeadDimension(d, supported):
            "head dimension \(d) is outside the supported range \(supported.lowerBound)...\(supported.upperBound)"
        case let .invalidArgument(reason):
            reason
        case let .outOfMemory(byteCount):
            "out of memory: cannot allocate \(byteCount) bytes"
        case let .axisOutOfRange(axis, rank):
            "axis \(axis) is not an axis of a tensor of \(rank) dimensions (0..<\(rank))"
        case let .rangeOutOfBounds(range, axis, extent):
            "range \(range.lowerBound)..<\(range.upperBound) along axis \(axis) is not within its extent 0..<\(extent)"
        case let .shapeMismatch(expected, actual, tensor):
            "\(tensor) has shape \(actual), expected \(expected)"
        case let .notContiguous(shape, strides):
            "a view of shape \(shape) with strides \(strides) is not row-major contiguous; contiguous() makes a copy"
                + " that is"
        case let .pageOutOfRange(sequence, entry, page, pageCount):
            "page table entry [\(sequence), \(entry)] is page \(page), outside the pool's 0..<\(pageCount) (−1 marks no page)"
        case let .unassignedPage(sequence, entry):
            "sequence \(sequence) holds tokens in page table entry \(entry), which has no page (−1)"
        case let .cacheFull(sequence, length, capacity):
            "sequence \(sequence) would hold \(length) tokens, past its cache's capacity of \(capacity)"
        case let .outOfPages(needed, free):
            "appending needs \(needed) new pages and the pool has \(free) free"
        }
    }
}
