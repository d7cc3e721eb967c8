/// What can be wrong with a mod: in its textual form, its types, its tables or its values over a domain.
public enum ModError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The text does not follow the grammar; `position` counts characters from 0.
    case syntax(String, position: Int)
    /// A name that is neither a variable, a function, a table nor a parameter given to the parser.
    case unknownName(String, position: Int)
    /// A function or table called with the wrong number of operands.
    case wrongArity(String, expected: String, actual: Int)
    /// An operand of the wrong type.
    case typeMismatch(String)
    /// A table or parameter name that cannot be used.
    case invalidName(String, reason: String)
    /// A malformed table.
    case invalidTable(String, reason: String)
    /// One expression uses two different tables under one name.
    case conflictingTables(String)
    /// At `(b, h, q, kv)` an index of `table` is outside its axis.
    case tableIndexOutOfRange(table: String, axis: Int, index: Int, extent: Int, at: [Int])
    /// At `(b, h, q, kv)` an Int `/` or `%` divides by zero.
    case divisionByZero(at: [Int])

    /// The error as one line of text.
    public var description: String {
        switch self {
        case let .syntax(message, position): "syntax error at character \(position): \(message)"
        case let .unknownName(name, position): "unknown name '\(name)' at character \(position)"
        case let .wrongArity(name, expected, actual): "\(name) takes \(expected), got \(actual)"
        case let .typeMismatch(message): "type error: \(message)"
        case let .invalidName(name, reason): "'\(name)' cannot name a table or parameter: \(reason)"
        case let .invalidTable(name, reason): "table \(name): \(reason)"
        case let .conflictingTables(name): "two different tables are both named \(name)"
        case let .tableIndexOutOfRange(table, axis, index, extent, at):
            "index \(index) of axis \(axis) of table \(table) is outside 0..<\(extent) at (b, h, q, kv) = \(at)"
        case let .divisionByZero(at): "integer division by zero at (b, h, q, kv) = \(at)"
        }
    }
}
