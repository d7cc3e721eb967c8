/// Reads the textual form into a checked expression: recursive descent, one function per precedence level.
///
/// Chains of binary operators are read by loops; parentheses, calls, indices and prefix operators recurse, at
/// most ``nestingLimit`` deep, so no input can overflow the stack. Every step takes constant time (a node's type
/// is known when it is made), so parsing is linear in the length of the text.
struct ModParser {
    /// How deeply parentheses, calls, table indices and prefix operators may nest. Deeper formulas can be written
    /// with `let` bindings, as ``ModPrinter`` prints them.
    static let nestingLimit = 64

    private let tokens: [ModToken]
    private var index = 0
    private let tables: [String: ModTable]
    private let parameters: [String: ModScalar]
    private let allowsScore: Bool
    /// The values of the `let` bindings read so far.
    private var bindings: [String: ModNode] = [:]
    private var depth = 0

    /// Parses `text` whole, with `score` available only when `allowsScore`.
    static func parse(
        _ text: String, tables: [ModTable], parameters: [String: ModScalar], allowsScore: Bool
    ) throws -> ModNode {
        var byName: [String: ModTable] = [:]
        for table in tables {
            if byName[table.name] != nil { throw ModError.conflictingTables(table.name) }
            byName[table.name] = table
        }
        for name in parameters.keys {
            try ModName.validate(name)
            if byName[name] != nil { throw ModError.invalidName(name, reason: "also the name of a table") }
        }
        var parser = ModParser(
            tokens: try ModLexer.tokens(text), tables: byName, parameters: parameters, allowsScore: allowsScore)
        while parser.current.kind == .identifier("let") { try parser.parseBinding() }
        let node = try parser.parseOr()
        guard parser.current.kind == .end else { throw parser.unexpected("an operator or the end") }
        return node
    }

    /// `let NAME = EXPRESSION;`: later text reads `NAME` as that value, computed once.
    private mutating func parseBinding() throws {
        index += 1
        let token = current
        guard case .identifier(let name) = token.kind else { throw unexpected("a name to bind") }
        index += 1
        try ModName.validate(name)
        if tables[name] != nil || parameters[name] != nil || bindings[name] != nil {
            throw ModError.invalidName(name, reason: "already names a table, parameter or binding")
        }
        try expect("=")
        bindings[name] = try parseOr()
        try expect(";")
    }

    /// Runs `body` one nesting level deeper.
    private mutating func nested(_ body: (inout ModParser) throws -> ModNode) throws -> ModNode {
        guard depth < Self.nestingLimit else {
            throw ModError.syntax("nested more than \(Self.nestingLimit) levels deep", position: current.position)
        }
        depth += 1
        defer { depth -= 1 }
        return try body(&self)
    }

    private init(tokens: [ModToken], tables: [String: ModTable], parameters: [String: ModScalar], allowsScore: Bool) {
        self.tokens = tokens
        self.tables = tables
        self.parameters = parameters
        self.allowsScore = allowsScore
    }

    private var current: ModToken { tokens[index] }

    private mutating func take(_ symbol: String) -> Bool {
        guard current.kind == .symbol(symbol) else { return false }
        index += 1
        return true
    }

    private mutating func expect(_ symbol: String) throws {
        guard take(symbol) else { throw unexpected("'\(symbol)'") }
    }

    private func unexpected(_ expected: String) -> ModError {
        let found = switch current.kind {
        case .identifier(let name): "'\(name)'"
        case .integer(let digits): digits
        case .float(let value): String(value)
        case .symbol(let symbol): "'\(symbol)'"
        case .end: "the end"
        }
        return .syntax("expected \(expected), found \(found)", position: current.position)
    }

    private static func checked(_ node: ModNode) throws -> ModNode {
        if let error = node.typeError { throw error }
        return node
    }

    /// Parses a left-associative chain of the binary operators in `symbols` over operands read by `operand`.
    private mutating func chain(
        _ symbols: [String], _ operand: (inout ModParser) throws -> ModNode
    ) throws -> ModNode {
        var left = try operand(&self)
        while let symbol = symbols.first(where: { take($0) }), let op = ModBinaryOperator(rawValue: symbol) {
            left = try Self.checked(.binaryPromoting(op, left, try operand(&self)))
        }
        return left
    }

    private mutating func parseOr() throws -> ModNode { try chain(["||"]) { try $0.parseAnd() } }

    private mutating func parseAnd() throws -> ModNode { try chain(["&&"]) { try $0.parseNot() } }

    private mutating func parseNot() throws -> ModNode {
        guard take("!") else { return try parseComparison() }
        return try Self.checked(.unary(.not, try nested { try $0.parseNot() }))
    }

    /// Comparisons do not chain: `a < b < c` is a syntax error.
    private mutating func parseComparison() throws -> ModNode {
        let left = try parseAdditive()
        for op in [ModBinaryOperator.equal, .notEqual, .lessEqual, .greaterEqual, .less, .greater] where take(op.rawValue) {
            return try Self.checked(.binaryPromoting(op, left, try parseAdditive()))
        }
        return left
    }

    private mutating func parseAdditive() throws -> ModNode { try chain(["+", "-"]) { try $0.parseMultiplicative() } }

    private mutating func parseMultiplicative() throws -> ModNode { try chain(["*", "/", "%"]) { try $0.parseUnary() } }

    private mutating func parseUnary() throws -> ModNode {
        guard take("-") else { return try parseAtom() }
        // Joining the sign to the digits keeps Int.min writable.
        if case .integer(let digits) = current.kind {
            index += 1
            return try integer("-" + digits, at: tokens[index - 1].position)
        }
        return try Self.checked(.negated(try nested { try $0.parseUnary() }))
    }

    private func integer(_ text: String, at position: Int) throws -> ModNode {
        guard let value = Int(text) else { throw ModError.syntax("\(text) is outside the range of Int", position: position) }
        return .int(value)
    }

    private mutating func parseAtom() throws -> ModNode {
        let token = current
        switch token.kind {
        case .integer(let digits):
            index += 1
            return try integer(digits, at: token.position)
        case .float(let value):
            index += 1
            return .float(value)
        case .symbol("("):
            index += 1
            let inner = try nested { try $0.parseOr() }
            try expect(")")
            return inner
        case .identifier(let name):
            index += 1
            return try named(name, at: token.position)
        default:
            throw unexpected("a value")
        }
    }

    private mutating func named(_ name: String, at position: Int) throws -> ModNode {
        if let variable = ModVariable(rawValue: name), variable != .score || allowsScore {
            return .variable(variable)
        }
        if let bound = bindings[name] { return bound }
        if let table = tables[name] {
            try expect("[")
            let indices = try list(closing: "]")
            return try Self.checked(.lookup(table, indices))
        }
        if let value = parameters[name] {
            return .parameter(try ModParameter(name: name, value: value))
        }
        guard current.kind == .symbol("("), let function = ModFunction(rawValue: name) else {
            throw ModError.unknownName(name, position: position)
        }
        index += 1
        let arguments = try list(closing: ")")
        guard arguments.count == function.arity else {
            throw ModError.wrongArity(name, expected: function.arityDescription, actual: arguments.count)
        }
        return try Self.checked(function.apply(arguments))
    }

    /// Comma-separated expressions up to `closing`; at least one.
    private mutating func list(closing: String) throws -> [ModNode] {
        var items = [try nested { try $0.parseOr() }]
        while take(",") { items.append(try nested { try $0.parseOr() }) }
        try expect(closing)
        return items
    }
}

/// The functions of the textual form.
enum ModFunction: String {
    case abs, min, max, clamp, `where`, exp, log, tanh, sqrt, float

    var arity: Int {
        switch self {
        case .min, .max: 2
        case .clamp, .where: 3
        case .abs, .exp, .log, .tanh, .sqrt, .float: 1
        }
    }

    var arityDescription: String { arity == 1 ? "1 argument" : "\(arity) arguments" }

    /// The node for a call with `arity` arguments, Int operands promoted where a Float is involved.
    func apply(_ arguments: [ModNode]) -> ModNode {
        switch self {
        case .min: .binaryPromoting(.min, arguments[0], arguments[1])
        case .max: .binaryPromoting(.max, arguments[0], arguments[1])
        case .clamp:
            { .clamp($0[0], $0[1], $0[2]) }(ModNode.promotingAll(arguments))
        case .where:
            { .select(arguments[0], $0[0], $0[1]) }(ModNode.promotingAll(Array(arguments[1...])))
        case .abs: .unaryPromoting(.abs, arguments[0])
        case .exp: .unaryPromoting(.exp, arguments[0])
        case .log: .unaryPromoting(.log, arguments[0])
        case .tanh: .unaryPromoting(.tanh, arguments[0])
        case .sqrt: .unaryPromoting(.sqrt, arguments[0])
        case .float: .unaryPromoting(.float, arguments[0])
        }
    }
}
