/// The dictionary at the start of a `.npy` file, a Python literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
struct NumPyHeader: Equatable {
    /// How deep brackets may nest in the dictionary; NumPy's own headers nest two deep.
    static let maximumNesting = 32
    /// The longest header read, in bytes: NumPy writes a few hundred, and the limit keeps a corrupt length field
    /// from asking for gigabytes.
    static let maximumLength = 1 << 20

    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    init(descr: String, fortranOrder: Bool, shape: [Int]) {
        self.descr = descr
        self.fortranOrder = fortranOrder
        self.shape = shape
    }

    /// Parses the dictionary: keys in any order, either quote style, any spacing, trailing commas, Python 2's `3L`.
    /// - Throws: ``NumPyError/malformedHeader(_:)`` unless it holds exactly `descr` (a string), `fortran_order`
    ///   (a Bool) and `shape` (a tuple of non-negative Ints); ``NumPyError/unsupportedDType(_:)`` for a structured
    ///   dtype.
    init(parsing text: String) throws {
        var parser = PythonLiteralParser(text)
        guard case .dictionary(let entries) = try parser.parseWhole() else {
            throw NumPyError.malformedHeader("the header is not a dictionary")
        }
        let keys = entries.map(\.key)
        guard keys.sorted() == ["descr", "fortran_order", "shape"] else {
            throw NumPyError.malformedHeader("expected keys descr, fortran_order and shape, got \(keys)")
        }
        let values = Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.value) })
        switch values["descr"] {
        case .string(let descr)?: self.descr = descr
        case .sequence?: throw NumPyError.unsupportedDType("structured")
        default: throw NumPyError.malformedHeader("descr is not a string")
        }
        guard case .bool(let fortranOrder)? = values["fortran_order"] else {
            throw NumPyError.malformedHeader("fortran_order is not True or False")
        }
        self.fortranOrder = fortranOrder
        switch values["shape"] {
        case .sequence(let items)?:
            shape = try items.map { item in
                guard case .int(let extent) = item else { throw NumPyError.malformedHeader("shape holds a non-integer") }
                return extent
            }
        case .int(let extent)?: shape = [extent]  // `(3)` without the comma
        default: throw NumPyError.malformedHeader("shape is not a tuple")
        }
    }

    /// The dictionary as NumPy writes it (without padding or newline).
    var text: String {
        let extents = shape.map(String.init)
        let shapeText = extents.count == 1 ? "(\(extents[0]),)" : "(\(extents.joined(separator: ", ")))"
        return "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
    }
}

/// The subset of Python literals a `.npy` header uses.
private enum PythonLiteral {
    case string(String)
    case bool(Bool)
    case int(Int)
    case sequence([PythonLiteral])
    case dictionary([(key: String, value: PythonLiteral)])
}

/// A recursive-descent reader of ``PythonLiteral``s over the header's characters.
///
/// Brackets may nest at most ``NumPyHeader/maximumNesting`` deep, so no header can drive the recursion past a
/// few dozen frames.
private struct PythonLiteralParser {
    private let characters: [Character]
    private var position = 0
    private var depth = 0

    init(_ text: String) { characters = Array(text) }

    /// One literal followed by nothing but whitespace.
    mutating func parseWhole() throws -> PythonLiteral {
        let value = try parseValue()
        skipSpace()
        guard position == characters.count else { throw failure("unexpected '\(characters[position])'") }
        return value
    }

    private mutating func parseValue() throws -> PythonLiteral {
        skipSpace()
        guard position < characters.count else { throw failure("it ends early") }
        switch characters[position] {
        case "{": return .dictionary(try parseItems(closing: "}") { parser in
            guard case .string(let key) = try parser.parseValue() else { throw parser.failure("a key is not a string") }
            try parser.expect(":")
            return (key, try parser.parseValue())
        })
        case "(": return .sequence(try parseItems(closing: ")") { try $0.parseValue() })
        case "[": return .sequence(try parseItems(closing: "]") { try $0.parseValue() })
        case "'", "\"": return .string(try parseString())
        default: return try parseWord()
        }
    }

    /// Comma-separated items after an opening bracket, up to `closing`; a trailing comma is allowed.
    private mutating func parseItems<Item>(
        closing: Character, _ item: (inout PythonLiteralParser) throws -> Item
    ) throws -> [Item] {
        guard depth < NumPyHeader.maximumNesting else { throw NumPyError.nestingTooDeep(limit: NumPyHeader.maximumNesting) }
        depth += 1
        defer { depth -= 1 }
        position += 1
        var items: [Item] = []
        while true {
            skipSpace()
            if position < characters.count, characters[position] == closing {
                position += 1
                return items
            }
            items.append(try item(&self))
            skipSpace()
            guard position < characters.count else { throw failure("missing '\(closing)'") }
            if characters[position] == "," { position += 1 } else if characters[position] != closing {
                throw failure("expected ',' or '\(closing)', got '\(characters[position])'")
            }
        }
    }

    private mutating func parseString() throws -> String {
        let quote = characters[position]
        position += 1
        guard let end = characters[position...].firstIndex(of: quote) else { throw failure("unterminated string") }
        defer { position = end + 1 }
        return String(characters[position..<end])
    }

    /// `True`, `False` or a non-negative integer (with Python 2's optional `L`).
    private mutating func parseWord() throws -> PythonLiteral {
        let start = position
        while position < characters.count, characters[position].isLetter || characters[position].isNumber {
            position += 1
        }
        var word = String(characters[start..<position])
        switch word {
        case "True": return .bool(true)
        case "False": return .bool(false)
        default:
            if word.hasSuffix("L") { word.removeLast() }
            guard !word.isEmpty, word.allSatisfy(\.isASCII), let value = Int(word) else {
                throw failure(word.isEmpty ? "unexpected '\(characters[start])'" : "unexpected '\(word)'")
            }
            return .int(value)
        }
    }

    private mutating func expect(_ character: Character) throws {
        skipSpace()
        guard position < characters.count, characters[position] == character else { throw failure("missing '\(character)'") }
        position += 1
    }

    private mutating func skipSpace() {
        while position < characters.count, characters[position].isWhitespace { position += 1 }
    }

    private func failure(_ reason: String) -> NumPyError {
        .malformedHeader("\(reason) at character \(position) of the dictionary")
    }
}
