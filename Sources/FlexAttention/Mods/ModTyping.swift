/// The typing rules, shared by the parser (which checks each node as it builds it) and by ``ModNode/validate()``
/// (which checks traced trees, whose Swift types already rule out most errors but not a table's arity).
extension ModNode {
    /// `-x`, folding a literal operand so that `-3` is one literal whichever way it was written.
    static func negated(_ x: ModNode) -> ModNode {
        switch x.operation {
        case .int(let value): .int(0 &- value)
        case .float(let value): .float(-value)
        default: .unary(.negate, x)
        }
    }

    /// `float(x)` when `x` is an Int (folded when `x` is a literal, so `score > 0` reads `score > 0.0`); `x`
    /// otherwise.
    static func promoted(_ x: ModNode) -> ModNode {
        if case .int(let value) = x.operation { return .float(Float(value)) }
        return x.type == .int ? .unary(.float, x) : x
    }

    /// Converts the Int operands to Float when any operand is a Float, as the textual form's rules say.
    static func promotingAll(_ operands: [ModNode]) -> [ModNode] {
        operands.contains { $0.type == .float } ? operands.map(promoted) : operands
    }

    /// `x op y` with Int operands promoted beside a Float one.
    static func binaryPromoting(_ op: ModBinaryOperator, _ x: ModNode, _ y: ModNode) -> ModNode {
        let operands = promotingAll([x, y])
        return .binary(op, operands[0], operands[1])
    }

    /// A one-operand function with a Float result applied to an Int promotes it first.
    static func unaryPromoting(_ op: ModUnaryOperator, _ x: ModNode) -> ModNode {
        switch op {
        case .negate: negated(x)
        case .exp, .log, .tanh, .sqrt: .unary(op, promoted(x))
        case .not, .abs, .float: .unary(op, x)
        }
    }

    /// Why this node's operands do not fit it (its operands themselves are not checked), or `nil`.
    var typeError: ModError? {
        func mismatch(_ message: String) -> ModError { .typeMismatch(message) }
        func numeric(_ x: ModNode) -> Bool { x.type != .bool }
        switch operation {
        case .variable, .int, .float, .parameter:
            return nil
        case .unary(let op, let x):
            switch op {
            case .not where x.type != .bool: return mismatch("'!' needs a Bool, got \(x.type) in \(self.text)")
            case .float where x.type != .int: return mismatch("float() needs an Int, got \(x.type) in \(self.text)")
            case .negate, .abs, .exp, .log, .tanh, .sqrt:
                let expected: ModType? = op == .negate || op == .abs ? nil : .float
                if !numeric(x) || expected.map({ $0 != x.type }) ?? false {
                    return mismatch("\(op.rawValue) cannot take a \(x.type) in \(self.text)")
                }
                return nil
            default: return nil
            }
        case .binary(let op, let x, let y):
            if x.type != y.type {
                return mismatch("'\(op.rawValue)' needs operands of one type, got \(x.type) and \(y.type) in \(self.text)")
            }
            let allowsBool = op == .and || op == .or || op == .equal || op == .notEqual
            let needsBool = op == .and || op == .or
            if needsBool && x.type != .bool || !allowsBool && x.type == .bool {
                return mismatch("'\(op.rawValue)' cannot take \(x.type) operands in \(self.text)")
            }
            return nil
        case .clamp(let x, let low, let high):
            guard numeric(x), x.type == low.type, x.type == high.type else {
                return mismatch("clamp needs three Ints or three Floats in \(self.text)")
            }
            return nil
        case .select(let condition, let then, let otherwise):
            guard condition.type == .bool else { return mismatch("where needs a Bool condition in \(self.text)") }
            guard then.type == otherwise.type else {
                return mismatch("where needs branches of one type, got \(then.type) and \(otherwise.type) in \(self.text)")
            }
            return nil
        case .lookup(let table, let indices):
            if indices.count != table.shape.count {
                return .wrongArity(table.name, expected: "\(table.shape.count) indices", actual: indices.count)
            }
            if let bad = indices.first(where: { $0.type != .int }) {
                return mismatch("table indices must be Ints, got \(bad.type) in \(self.text)")
            }
            return nil
        }
    }

    /// Checks every node's types and arities, and that no two different tables share a name.
    func validate() throws {
        var tables: [String: ModTable] = [:]
        for node in uniqueNodes {
            if let error = node.typeError { throw error }
            if case .lookup(let table, _) = node.operation {
                if let known = tables[table.name], known != table { throw ModError.conflictingTables(table.name) }
                tables[table.name] = table
            }
        }
    }

    /// The textual form, shortened for messages.
    var text: String { ModPrinter.excerpt(self) }
}
