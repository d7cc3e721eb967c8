// Symbolic values for tracing: a mod closure runs once on these, and the operators record the expression.

/// A symbolic Int inside a traced mod: an index (`b`, `h`, `q`, `kv`), a length, a table entry, or arithmetic
/// on them. `/` and `%` floor, like Python's `//` and `%`; `+ - *` wrap on overflow.
public struct ModInt: Sendable, ExpressibleByIntegerLiteral {
    /// The recorded expression.
    public let expression: ModExpression

    /// Wraps an expression of the right type (checked when the mod is validated).
    public init(expression: ModExpression) { self.expression = expression }

    /// A literal; lifted to a kernel argument, so changing it recompiles nothing.
    public init(integerLiteral value: Int) { self.init(.int(value)) }

    /// A constant from a Swift value.
    public init(_ value: Int) { self.init(.int(value)) }

    /// A named parameter: prints as `name`.
    public init(_ parameter: ModParameter) { self.init(.parameter(parameter)) }

    /// `float(self)`.
    public var float: ModFloat { ModFloat(.unary(.float, node)) }
}

/// A symbolic Float inside a traced mod: the score, a Float table entry, or arithmetic on them.
public struct ModFloat: Sendable, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    /// The recorded expression.
    public let expression: ModExpression

    /// Wraps an expression of the right type (checked when the mod is validated).
    public init(expression: ModExpression) { self.expression = expression }

    /// A literal; lifted to a kernel argument.
    public init(floatLiteral value: Float) { self.init(.float(value)) }

    /// A whole-number literal used as a Float.
    public init(integerLiteral value: Int) { self.init(.float(Float(value))) }

    /// A constant from a Swift value.
    public init(_ value: Float) { self.init(.float(value)) }

    /// A named parameter: prints as `name`.
    public init(_ parameter: ModParameter) { self.init(.parameter(parameter)) }
}

/// A symbolic Bool inside a traced mod: what a mask returns.
public struct ModBool: Sendable, ExpressibleByBooleanLiteral {
    /// The recorded expression.
    public let expression: ModExpression

    /// Wraps an expression of the right type (checked when the mod is validated).
    public init(expression: ModExpression) { self.expression = expression }

    /// `true` is `0 == 0`, `false` is `0 != 0`: the textual form has no Bool literal.
    public init(booleanLiteral value: Bool) { self.init(.binary(value ? .equal : .notEqual, .int(0), .int(0))) }
}

/// A traced value: wraps the expression recorded so far.
public protocol ModSymbol: Sendable {
    /// The recorded expression.
    var expression: ModExpression { get }
    /// Wraps an expression of the right type (checked when the mod is validated).
    init(expression: ModExpression)
}

extension ModSymbol {
    var node: ModNode { expression.node }

    init(_ node: ModNode) { self.init(expression: ModExpression(node)) }
}

/// ``ModInt`` or ``ModFloat``: the operators and functions common to both.
public protocol ModNumber: ModSymbol {}

extension ModInt: ModNumber {}
extension ModFloat: ModNumber {}
extension ModBool: ModSymbol {}

extension ModNumber {
    /// The sum: `x + y`, recorded in the trace.
    public static func + (x: Self, y: Self) -> Self { Self(.binary(.add, x.node, y.node)) }
    /// The difference: `x - y`, recorded in the trace.
    public static func - (x: Self, y: Self) -> Self { Self(.binary(.subtract, x.node, y.node)) }
    /// The product: `x * y`, recorded in the trace.
    public static func * (x: Self, y: Self) -> Self { Self(.binary(.multiply, x.node, y.node)) }
    /// The quotient `x / y` (floored for Ints, like Python's `//`), recorded in the trace.
    public static func / (x: Self, y: Self) -> Self { Self(.binary(.divide, x.node, y.node)) }
    /// The remainder `x % y`, floored like Python's (the sign of `y`), recorded in the trace.
    public static func % (x: Self, y: Self) -> Self { Self(.binary(.remainder, x.node, y.node)) }
    /// The negation: `-x`, recorded in the trace.
    public static prefix func - (x: Self) -> Self { Self(.negated(x.node)) }
    /// Whether the operands are equal: `x == y`, recorded in the trace.
    public static func == (x: Self, y: Self) -> ModBool { ModBool(.binary(.equal, x.node, y.node)) }
    /// Whether the operands differ: `x != y`, recorded in the trace.
    public static func != (x: Self, y: Self) -> ModBool { ModBool(.binary(.notEqual, x.node, y.node)) }
    /// Whether `x` is less than `y`: `x < y`, recorded in the trace.
    public static func < (x: Self, y: Self) -> ModBool { ModBool(.binary(.less, x.node, y.node)) }
    /// Whether `x` is at most `y`: `x <= y`, recorded in the trace.
    public static func <= (x: Self, y: Self) -> ModBool { ModBool(.binary(.lessEqual, x.node, y.node)) }
    /// Whether `x` is greater than `y`: `x > y`, recorded in the trace.
    public static func > (x: Self, y: Self) -> ModBool { ModBool(.binary(.greater, x.node, y.node)) }
    /// Whether `x` is at least `y`: `x >= y`, recorded in the trace.
    public static func >= (x: Self, y: Self) -> ModBool { ModBool(.binary(.greaterEqual, x.node, y.node)) }
}

extension ModBool {
    /// Both conditions: `x && y`. Both operands are always evaluated (no short circuit).
    public static func && (x: ModBool, y: ModBool) -> ModBool { ModBool(.binary(.and, x.node, y.node)) }
    /// Either condition: `x || y`. Both operands are always evaluated (no short circuit).
    public static func || (x: ModBool, y: ModBool) -> ModBool { ModBool(.binary(.or, x.node, y.node)) }
    /// The opposite condition: `!x`.
    public static prefix func ! (x: ModBool) -> ModBool { ModBool(.unary(.not, x.node)) }
    /// Whether both conditions agree: `x == y`.
    public static func == (x: ModBool, y: ModBool) -> ModBool { ModBool(.binary(.equal, x.node, y.node)) }
    /// Whether the conditions differ: `x != y`.
    public static func != (x: ModBool, y: ModBool) -> ModBool { ModBool(.binary(.notEqual, x.node, y.node)) }
}

/// Mixed Int and Float operands promote the Int, as in the textual form.
extension ModFloat {
    /// The sum with the Int promoted: `x + float(y)`.
    public static func + (x: ModFloat, y: ModInt) -> ModFloat { x + y.float }
    /// The difference with the Int promoted: `x - float(y)`.
    public static func - (x: ModFloat, y: ModInt) -> ModFloat { x - y.float }
    /// The product with the Int promoted: `x * float(y)`.
    public static func * (x: ModFloat, y: ModInt) -> ModFloat { x * y.float }
    /// The quotient with the Int promoted: `x / float(y)`.
    public static func / (x: ModFloat, y: ModInt) -> ModFloat { x / y.float }
    /// The product with the Int promoted: `float(x) * y`.
    public static func * (x: ModInt, y: ModFloat) -> ModFloat { x.float * y }
}

/// `|x|`.
public func abs<T: ModNumber>(_ x: T) -> T { T(.unary(.abs, x.node)) }
/// The smaller of `x` and `y`.
public func min<T: ModNumber>(_ x: T, _ y: T) -> T { T(.binary(.min, x.node, y.node)) }
/// The larger of `x` and `y`.
public func max<T: ModNumber>(_ x: T, _ y: T) -> T { T(.binary(.max, x.node, y.node)) }
/// `min(max(x, low), high)`.
public func clamp<T: ModNumber>(_ x: T, _ low: T, _ high: T) -> T { T(.clamp(x.node, low.node, high.node)) }
/// `then` where `condition` holds, else `otherwise`; both are evaluated.
public func select<T: ModNumber>(_ condition: ModBool, _ then: T, _ otherwise: T) -> T {
    T(.select(condition.node, then.node, otherwise.node))
}
/// `e^x`.
public func exp(_ x: ModFloat) -> ModFloat { ModFloat(.unary(.exp, x.node)) }
/// The natural logarithm.
public func log(_ x: ModFloat) -> ModFloat { ModFloat(.unary(.log, x.node)) }
/// The hyperbolic tangent.
public func tanh(_ x: ModFloat) -> ModFloat { ModFloat(.unary(.tanh, x.node)) }
/// The square root.
public func sqrt(_ x: ModFloat) -> ModFloat { ModFloat(.unary(.sqrt, x.node)) }
/// `x` as a Float.
public func float(_ x: ModInt) -> ModFloat { x.float }

/// An Int32 table for tracing: `ids[q]` reads it symbolically.
public struct IntTable: Sendable {
    /// The captured contents.
    public let table: ModTable

    /// A table named `name`, the name the textual form prints and parses (`name[i]`).
    /// - Throws: ``ModError`` for a bad name or a shape that does not match `values`.
    public init(name: String, values: [Int32], shape: [Int]) throws {
        table = try ModTable(name: name, shape: shape, elements: .int32(values))
    }

    /// A table named after its contents (`t_` and a hash), for a Swift array captured without choosing a name; the
    /// shape is `[values.count]` when not given.
    /// - Throws: ``ModError`` for a shape that does not match `values`.
    public init(_ values: [Int32], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        try self.init(name: contentName(shape, values.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }),
                      values: values, shape: shape)
    }

    /// The entry at `indices` (one per axis; a wrong count is reported when the mod is validated).
    public subscript(_ indices: ModInt...) -> ModInt { ModInt(.lookup(table, indices.map(\.node))) }
}

/// A Float table for tracing: `bias[h, q - kv]` reads it symbolically; its gradient can be computed.
public struct FloatTable: Sendable {
    /// The captured contents.
    public let table: ModTable

    /// A table named `name`, the name the textual form prints and parses and its gradient is listed under.
    /// - Throws: ``ModError`` for a bad name or a shape that does not match `values`.
    public init(name: String, values: [Float], shape: [Int]) throws {
        table = try ModTable(name: name, shape: shape, elements: .float(values))
    }

    /// A table named after its contents (`t_` and a hash), for a Swift array captured without choosing a name; the
    /// shape is `[values.count]` when not given. Its gradient is `gradients[table: thisTable]`.
    /// - Throws: ``ModError`` for a shape that does not match `values`.
    public init(_ values: [Float], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        try self.init(
            name: contentName(shape, values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }),
            values: values, shape: shape)
    }

    /// The entry at `indices`.
    public subscript(_ indices: ModInt...) -> ModFloat { ModFloat(.lookup(table, indices.map(\.node))) }
}

/// A table name that only these contents and this shape give: equal tables share it, different ones (but for a
/// 2^-64 chance) do not.
private func contentName(_ shape: [Int], _ bytes: [UInt8]) -> String {
    let header = shape.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }
    return "t_" + hexString(SHA256.hash(header + bytes)).prefix(16)
}
