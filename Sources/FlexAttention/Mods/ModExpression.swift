/// The value type of a mod expression: index arithmetic is `Int`, scores are `Float`, masks are `Bool`.
public enum ModType: String, Sendable, Hashable, CustomStringConvertible {
    case int = "Int"
    case float = "Float"
    case bool = "Bool"

    public var description: String { rawValue }
}

/// The arguments every mod may read. `score` exists only in score mods.
public enum ModVariable: String, Sendable, Hashable, CaseIterable {
    case b, h, q, kv
    case queryLength = "q_len"
    case keyLength = "kv_len"
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

/// One node of the expression tree. Built only through ``ModExpression``'s typed builders, so every tree is
/// well typed and canonical (negated literals folded, Int operands of Float operations converted explicitly):
/// that is what makes printing and parsing exact inverses.
indirect enum ModNode: Hashable, Sendable {
    case variable(ModVariable)
    case int(Int)
    case float(Float)
    case parameter(ModParameter)
    case unary(ModUnaryOperator, ModNode)
    case binary(ModBinaryOperator, ModNode, ModNode)
    /// `clamp(x, lo, hi)`, which is `min(max(x, lo), hi)`.
    case clamp(ModNode, ModNode, ModNode)
    /// `where(condition, then, else)`.
    case select(ModNode, ModNode, ModNode)
    case lookup(ModTable, [ModNode])

    /// The type of a well-formed node.
    var type: ModType {
        switch self {
        case .variable(let variable): variable.type
        case .int: .int
        case .float: .float
        case .parameter(let parameter): parameter.value.type
        case .unary(let op, let operand):
            switch op {
            case .not: .bool
            case .negate, .abs: operand.type
            case .exp, .log, .tanh, .sqrt, .float: .float
            }
        case .binary(let op, let left, _):
            op.isComparison || op == .and || op == .or ? .bool : left.type
        case .clamp(let x, _, _): x.type
        case .select(_, let then, _): then.type
        case .lookup(let table, _): table.elementType
        }
    }

    /// The direct operands, in order.
    var children: [ModNode] {
        switch self {
        case .variable, .int, .float, .parameter: []
        case .unary(_, let x): [x]
        case .binary(_, let x, let y): [x, y]
        case .clamp(let x, let y, let z), .select(let x, let y, let z): [x, y, z]
        case .lookup(_, let indices): indices
        }
    }

    /// The same node over `transform` of each operand.
    func mappingChildren(_ transform: (ModNode) -> ModNode) -> ModNode {
        switch self {
        case .variable, .int, .float, .parameter: self
        case .unary(let op, let x): .unary(op, transform(x))
        case .binary(let op, let x, let y): .binary(op, transform(x), transform(y))
        case .clamp(let x, let y, let z): .clamp(transform(x), transform(y), transform(z))
        case .select(let x, let y, let z): .select(transform(x), transform(y), transform(z))
        case .lookup(let table, let indices): .lookup(table, indices.map(transform))
        }
    }

    /// Calls `visit` on this node and every node below it, parents first, operands left to right.
    func forEachNode(_ visit: (ModNode) throws -> Void) rethrows {
        try visit(self)
        for child in children { try child.forEachNode(visit) }
    }

    /// Whether the value depends on `variable`.
    func reads(_ variable: ModVariable) -> Bool {
        if case .variable(let v) = self { return v == variable }
        return children.contains { $0.reads(variable) }
    }
}

/// A typed, well-formed mod expression: the intermediate representation every consumer reads (tile evaluation
/// on the CPU, interval analysis for block masks, symbolic differentiation, CUDA emission).
///
/// Expressions are made by tracing (``MaskMod``, ``ScoreMod``, ``ModInt``) or by parsing their textual form
/// (``parse(mask:tables:parameters:)``); ``description`` prints that form.
public struct ModExpression: Hashable, Sendable, CustomStringConvertible {
    let node: ModNode

    init(_ node: ModNode) {
        self.node = node
    }

    /// Int, Float or Bool.
    public var type: ModType { node.type }

    /// The textual form, which ``parse(mask:tables:parameters:)`` and ``parse(score:tables:parameters:)`` read back.
    public var description: String { ModPrinter.print(node) }

    /// Whether the value depends on `variable`; a mask that reads neither `b` nor `h` is the same for every head.
    public func reads(_ variable: ModVariable) -> Bool { node.reads(variable) }
}
