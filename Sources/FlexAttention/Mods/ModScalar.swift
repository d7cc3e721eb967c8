/// A constant of a mod: the value of a literal or of a named parameter.
public enum ModScalar: Hashable, Sendable, CustomStringConvertible {
    /// An Int constant.
    case int(Int)
    /// A Float constant.
    case float(Float)

    /// ``ModType/int`` or ``ModType/float``.
    public var type: ModType {
        switch self {
        case .int: .int
        case .float: .float
        }
    }

    /// The literal as the textual form writes it. Non-finite Floats have no literal and print as a division.
    public var description: String {
        switch self {
        case .int(let value): String(value)
        case .float(let value) where value.isNaN: "(0.0 / 0.0)"
        case .float(let value) where value.isInfinite: value < 0 ? "(-1.0 / 0.0)" : "(1.0 / 0.0)"
        case .float(let value): String(value)
        }
    }
}

/// A named scalar: prints as its name, so a mod can be written once and run with other values. Like literals,
/// parameters are run-time arguments of compiled kernels.
public struct ModParameter: Hashable, Sendable {
    /// The name used in the textual form.
    public let name: String
    /// The value it stands for.
    public let value: ModScalar

    /// A constant that prints as `name` instead of its value.
    /// - Throws: ``ModError/invalidName(_:reason:)`` when `name` is not an identifier or is a reserved word.
    public init(name: String, value: ModScalar) throws {
        try ModName.validate(name)
        self.name = name
        self.value = value
    }
}

/// The rules for the names of tables and parameters.
enum ModName {
    /// Words the textual form gives a meaning of its own.
    static let reserved: Set<String> = Set(ModVariable.allCases.map(\.rawValue)).union([
        "abs", "min", "max", "clamp", "where", "exp", "log", "tanh", "sqrt", "float", "let",
    ])

    static func isIdentifier(_ name: String) -> Bool {
        guard let tokens = try? ModLexer.tokens(name) else { return false }
        return tokens.map(\.kind) == [.identifier(name), .end]
    }

    static func validate(_ name: String) throws {
        guard isIdentifier(name) else { throw ModError.invalidName(name, reason: "not an identifier") }
        guard !reserved.contains(name) else { throw ModError.invalidName(name, reason: "a reserved word") }
    }
}
