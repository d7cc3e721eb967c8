/// Which scores attention keeps: a Bool expression of `b, h, q, kv` (and `q_len, kv_len`), traced from a closure.
///
/// ```swift
/// let window = MaskMod { b, h, q, kv in q >= kv && q - kv < 1024 }
/// print(window)  // q >= kv && q - kv < 1024
/// ```
public struct MaskMod: Sendable, Hashable, CustomStringConvertible {
    /// The Bool expression.
    public let expression: ModExpression

    /// Traces `body` once on symbolic `b, h, q, kv`.
    public init(_ body: (_ b: ModInt, _ h: ModInt, _ q: ModInt, _ kv: ModInt) -> ModBool) {
        expression = body(ModInt(.variable(.b)), ModInt(.variable(.h)), ModInt(.variable(.q)), ModInt(.variable(.kv)))
            .expression
    }

    /// Wraps an expression, checked to be a well-typed Bool expression that does not read `score`.
    public init(_ expression: ModExpression) throws {
        try expression.node.validate()
        guard expression.type == .bool else {
            throw ModError.typeMismatch("a mask must be Bool-valued, got \(expression.type): \(expression)")
        }
        guard !expression.reads(.score) else { throw ModError.typeMismatch("a mask cannot read score: \(expression)") }
        self.expression = expression
    }

    /// The textual form.
    public var description: String { expression.description }

    /// Checks what tracing cannot: table arities, table name clashes, and the Bool result.
    public func validate() throws { _ = try MaskMod(expression) }

    /// Kept where both masks keep.
    public static func && (x: MaskMod, y: MaskMod) -> MaskMod { x.combined(.and, y) }
    /// Kept where either mask keeps.
    public static func || (x: MaskMod, y: MaskMod) -> MaskMod { x.combined(.or, y) }
    /// Kept where `x` masks out.
    public static prefix func ! (x: MaskMod) -> MaskMod { MaskMod(node: .unary(.not, x.expression.node)) }

    /// Kept where both masks keep.
    public func and(_ other: MaskMod) -> MaskMod { self && other }
    /// Kept where either mask keeps.
    public func or(_ other: MaskMod) -> MaskMod { self || other }
    /// Kept where this mask masks out.
    public func not() -> MaskMod { !self }

    init(node: ModNode) { expression = ModExpression(node) }

    private func combined(_ op: ModBinaryOperator, _ other: MaskMod) -> MaskMod {
        MaskMod(node: .binary(op, expression.node, other.expression.node))
    }
}

/// A change to each score before the mask: a Float expression of `score, b, h, q, kv`, traced from a closure.
///
/// ```swift
/// let softCap = ScoreMod { score, b, h, q, kv in 30 * tanh(score / 30) }
/// ```
public struct ScoreMod: Sendable, Hashable, CustomStringConvertible {
    /// The Float expression.
    public let expression: ModExpression

    /// Traces `body` once on symbolic `score, b, h, q, kv`.
    public init(_ body: (_ score: ModFloat, _ b: ModInt, _ h: ModInt, _ q: ModInt, _ kv: ModInt) -> ModFloat) {
        expression = body(
            ModFloat(.variable(.score)), ModInt(.variable(.b)), ModInt(.variable(.h)), ModInt(.variable(.q)),
            ModInt(.variable(.kv))
        ).expression
    }

    /// Wraps an expression, checked to be a well-typed Float expression.
    public init(_ expression: ModExpression) throws {
        try expression.node.validate()
        guard expression.type == .float else {
            throw ModError.typeMismatch("a score mod must be Float-valued, got \(expression.type): \(expression)")
        }
        self.expression = expression
    }

    /// The unchanged score.
    public static let identity = ScoreMod { score, _, _, _, _ in score }

    /// The textual form.
    public var description: String { expression.description }

    /// Checks what tracing cannot: table arities, table name clashes.
    public func validate() throws { _ = try ScoreMod(expression) }

    /// `outer` applied to this mod's result: `outer(self(score))`.
    public func then(_ outer: ScoreMod) -> ScoreMod {
        ScoreMod(node: outer.expression.node.replacing(.score, with: expression.node))
    }

    init(node: ModNode) { expression = ModExpression(node) }
}

extension ModNode {
    /// This expression with every `variable` replaced by `replacement`.
    func replacing(_ variable: ModVariable, with replacement: ModNode) -> ModNode {
        rebuilt { node, operands in
            if case .variable(let v) = node.operation, v == variable { return replacement }
            return node.withChildren(operands)
        }
    }
}

extension ModInt {
    /// `q_len`, the number of queries.
    public static let queryLength = ModInt(.variable(.queryLength))
    /// `kv_len`, the number of keys.
    public static let keyLength = ModInt(.variable(.keyLength))
}

extension MaskMod {
    /// Reads a mask in the textual form.
    ///
    /// The text may start with `let` bindings, each value computed once: `let d = q - kv; d >= 0 && d < 256`.
    /// Parentheses, calls, table indices and prefix operators nest at most 64 levels (``ModError/syntax(_:position:)``
    /// beyond); chains of binary operators may be of any length. Parsing takes time linear in the text.
    ///
    /// - Parameters:
    ///   - mask: for example `q >= kv && doc[q] == doc[kv]`.
    ///   - tables: the tables the text may index, by their names.
    ///   - parameters: named scalars the text may use.
    /// - Throws: ``ModError`` for a syntax error, an unknown name, a wrong arity, a type error or a result that is not
    ///   Bool. Table indices are checked against the domain when the mask is used (see ``BlockMask``).
    public init(parsing mask: String, tables: [ModTable] = [], parameters: [String: ModScalar] = [:]) throws {
        try self.init(ModExpression(ModParser.parse(mask, tables: tables, parameters: parameters, allowsScore: false)))
    }
}

extension ScoreMod {
    /// Reads a score mod in the textual form, with the `let` bindings and nesting limit of
    /// ``MaskMod/init(parsing:tables:parameters:)``.
    ///
    /// - Parameters:
    ///   - score: for example `score - slope[h] * float(abs(q - kv))`.
    ///   - tables: the tables the text may index, by their names.
    ///   - parameters: named scalars the text may use.
    /// - Throws: ``ModError`` for a syntax error, an unknown name, a wrong arity, a type error or a result that is not
    ///   Float. Table indices are checked against the domain by ``ScoreMod/checkIndices(batch:heads:queryLength:keyLength:)``.
    public init(parsing score: String, tables: [ModTable] = [], parameters: [String: ModScalar] = [:]) throws {
        try self.init(ModExpression(ModParser.parse(score, tables: tables, parameters: parameters, allowsScore: true)))
    }
}
