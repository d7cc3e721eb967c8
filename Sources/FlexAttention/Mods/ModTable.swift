/// A captured table a mod indexes with 1 to 3 Int expressions: document ids, per-batch lengths, a bias.
///
/// Tables hold Int32 or Float elements, row-major. Their contents are run-time arguments of compiled kernels;
/// only the name, element type and rank shape an expression. Equality compares contents; hashing reads only the
/// name and shape, so large tables hash cheaply.
public struct ModTable: Hashable, Sendable {
    /// The elements, row-major.
    public enum Elements: Hashable, Sendable {
        /// Int32 elements, read as `Int` by a mod.
        case int32([Int32])
        /// Float elements, read as `Float` by a mod; a score mod's Float tables get gradients.
        case float([Float])
    }

    /// The name used in the textual form, `NAME[i, j]`.
    public let name: String
    /// The extent of each axis (1 to 3 axes).
    public let shape: [Int]
    /// The contents.
    public let elements: Elements

    /// A table of `elements`, row-major, with `shape` (1 to 3 axes), indexed as `name[i, j]`.
    /// - Throws: ``ModError`` when the name is not a usable identifier, the rank is not 1 to 3, an extent is not
    ///   positive or the element count does not match the shape.
    public init(name: String, shape: [Int], elements: Elements) throws {
        try ModName.validate(name)
        guard (1...3).contains(shape.count), shape.allSatisfy({ $0 > 0 }) else {
            throw ModError.invalidTable(name, reason: "shape \(shape) must have 1 to 3 positive extents")
        }
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
        let actual = switch elements {
        case .int32(let values): values.count
        case .float(let values): values.count
        }
        guard count == actual else {
            throw ModError.invalidTable(name, reason: "shape \(shape) needs \(count) elements, got \(actual)")
        }
        self.name = name
        self.shape = shape
        self.elements = elements
    }

    /// An Int table from 64-bit values, as `.npy` files of `<i8` hold them.
    /// - Throws: ``ModError/invalidTable(_:reason:)`` also when a value does not fit in Int32.
    public init(name: String, shape: [Int], int64 values: [Int64]) throws {
        var narrowed = [Int32]()
        narrowed.reserveCapacity(values.count)
        for value in values {
            guard let small = Int32(exactly: value) else {
                throw ModError.invalidTable(name, reason: "value \(value) does not fit in Int32")
            }
            narrowed.append(small)
        }
        try self.init(name: name, shape: shape, elements: .int32(narrowed))
    }

    /// ``ModType/int`` or ``ModType/float``.
    public var elementType: ModType {
        switch elements {
        case .int32: .int
        case .float: .float
        }
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Row-major strides of ``shape``.
    var strides: [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        return strides
    }

    /// Tables are equal when their names, shapes and contents are.
    public static func == (lhs: ModTable, rhs: ModTable) -> Bool {
        lhs.name == rhs.name && lhs.shape == rhs.shape && lhs.elements == rhs.elements
    }

    /// Hashes the name, shape and element type only, so large tables hash cheaply.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(shape)
        hasher.combine(elementType)
    }
}
