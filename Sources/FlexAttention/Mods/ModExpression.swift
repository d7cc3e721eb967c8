/// The value type of a mod expression: index arithmetic is `Int`, scores are `Float`, masks are `Bool`.
public enum ModType: String, Sendable, Hashable, CustomStringConvertible {
    /// Integers: indices, lengths, Int32 table entries.
    case int = "Int"
    /// Single-precision floats: the score, Float table entries.
    case float = "Float"
    /// Conditions: what a mask returns.
    case bool = "Bool"

    /// The type's name in the textual form: `Int`, `Float` or `Bool`.
    public var description: String { rawValue }
}

/// The arguments every mod may read. `score` exists only in score mods.
public enum ModVariable: String, Sendable, Hashable, CaseIterable {
    /// The batch, the query head, the query position and the key position.
    case b, h, q, kv
    /// `q_len`, the number of queries (`Sq`).
    case queryLength = "q_len"
    /// `kv_len`, the number of keys (`Skv`).
    case keyLength = "kv_len"
    /// `score`, the scaled `q · k` a score mod changes (score mods only).
    case score

    var type: ModType { self == .score ? .float : .int }
}

/// Operators and functions of one operand.
enum ModUnaryOperator: String, Sendable, Hashable {
    case negate = "-", not = "!", abs, exp, log, tanh, sqrt, float
}

/// Operators and functions of two operands. Both operands have one type (the builders promote Int to Float).
enum ModBinaryOperator: String, Sendable, Hashable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case and = "&&", or = "||"
    case min, max

    var isComparison: Bool {
        switch self {
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual: true
        default: false
        }
    }

    var isArithmetic: Bool {
        switch self {
        case .add, .subtract, .multiply, .divide, .remainder, .min, .max: true
        default: false
        }
    }
}

/// A typed, well-formed mod expression: the intermediate representation every consumer reads (tile evaluation
/// on the CPU, interval analysis for block masks, symbolic differentiation, CUDA emission).
///
/// Expressions are made by tracing (``MaskMod``, ``ScoreMod``, ``ModInt``) or by parsing their textual form
/// (``MaskMod/init(parsing:tables:parameters:)``); ``description`` prints that form. An expression is a DAG: a traced value
/// used twice is one node, and every analysis (typing, differentiation, printing, compiling) takes time linear
/// in the number of distinct nodes, however large the tree they expand to. A long expression prints with `let`
/// bindings, which parse back.
public struct ModExpression: Hashable, Sendable, CustomStringConvertible {
    let node: ModNode

    init(_ node: ModNode) {
        self.node = node
    }

    /// Int, Float or Bool.
    public var type: ModType { node.type }

    /// The textual form, which ``MaskMod/init(parsing:tables:parameters:)`` and
    /// ``ScoreMod/init(parsing:tables:parameters:)`` read back.
    public var description: String { ModPrinter.print(node) }

    /// Whether the value depends on `variable`; a mask that reads neither `b` nor `h` is the same for every head.
    public func reads(_ variable: ModVariable) -> Bool { node.reads(variable) }
}
