/// An n-dimensional array as NumPy's `.npy` format stores it: a shape and row-major (C order) elements.
///
/// Reads format versions 1.0, 2.0 and 3.0 with little-endian `float32`, `float16`, `int32` or `int64` elements;
/// writes any of them.
///
/// ```swift
/// let q = try NumPyArray(contentsOfFile: "q.npy").tensor()
/// let o = try attention.forward(query: q, key: k, value: v).output
/// let bytes = NumPyArray(o).encoded()   // `<f4`, ready to write to o.npy
/// ```
public struct NumPyArray: Sendable, Equatable {
    /// The elements, row-major, one case per supported dtype.
    public enum Elements: Sendable, Equatable {
        /// `<f4`
        case float32([Float])
        /// `<f2`
        case float16([Float16])
        /// `<i4`
        case int32([Int32])
        /// `<i8`
        case int64([Int64])

        /// Number of elements.
        public var count: Int {
            switch self {
            case .float32(let values): values.count
            case .float16(let values): values.count
            case .int32(let values): values.count
            case .int64(let values): values.count
            }
        }

        /// NumPy's name for the element type, `<f4` for example.
        public var descr: String { elementType.descr }

        var elementType: NumPyElementType {
            switch self {
            case .float32: .float32
            case .float16: .float16
            case .int32: .int32
            case .int64: .int64
            }
        }
    }

    /// The extent of each axis; empty for a scalar. Extents may be zero.
    public let shape: [Int]
    /// The contents.
    public let elements: Elements

    /// An array of `shape`, its elements row-major.
    /// - Throws: ``NumPyError/elementCountMismatch(shape:count:)`` when the elements do not fill `shape` exactly
    ///   (or an extent is negative).
    public init(shape: [Int], elements: Elements) throws {
        guard let count = NumPyArray.elementCount(shape), count == elements.count else {
            throw NumPyError.elementCountMismatch(shape: shape, count: elements.count)
        }
        self.shape = shape
        self.elements = elements
    }

    /// The product of the extents, `nil` when one is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for extent in shape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            count = product
        }
        return count
    }
}
