/// Prints expressions in the textual form with the fewest parentheses the precedence rules allow.
enum ModPrinter {
    /// Binding strength, loosest first; an operand printed at a weaker level than its slot needs parentheses.
    enum Level: Int, Comparable {
        case or, and, not, comparison, additive, multiplicative, unary, atom

        static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    static func print(_ node: ModNode) -> String { render(node).text }

    static func level(of op: ModBinaryOperator) -> Level {
        switch op {
        case .or: .or
        case .and: .and
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual: .comparison
        case .add, .subtract: .additive
        case .multiply, .divide, .remainder: .multiplicative
        case .min, .max: .atom
        }
    }

    private static func render(_ node: ModNode) -> (text: String, level: Level) {
        switch node {
        case .variable(let variable):
            return (variable.rawValue, .atom)
        case .int(let value):
            return (String(value), value < 0 ? .unary : .atom)
        case .float(let value):
            let scalar = ModScalar.float(value)
            return (scalar.description, value.sign == .minus && value.isFinite ? .unary : .atom)
        case .parameter(let parameter):
            return (parameter.name, .atom)
        case .unary(.negate, let x):
            return ("-" + operand(x, atLeast: .unary), .unary)
        case .unary(.not, let x):
            return ("!" + operand(x, atLeast: .not), .not)
        case .unary(let function, let x):
            return (call(function.rawValue, [x]), .atom)
        case .binary(let op, let x, let y):
            let level = level(of: op)
            if level == .atom { return (call(op.rawValue, [x, y]), .atom) }
            // Left-associative, except comparisons, which do not chain.
            let left = operand(x, atLeast: level == .comparison ? .additive : level)
            let right = operand(y, atLeast: Level(rawValue: level.rawValue + 1) ?? .atom)
            return ("\(left) \(op.rawValue) \(right)", level)
        case .clamp(let x, let low, let high):
            return (call("clamp", [x, low, high]), .atom)
        case .select(let condition, let then, let otherwise):
            return (call("where", [condition, then, otherwise]), .atom)
        case .lookup(let table, let indices):
            return ("\(table.name)[\(indices.map(print).joined(separator: ", "))]", .atom)
        }
    }

    private static func operand(_ node: ModNode, atLeast level: Level) -> String {
        let (text, actual) = render(node)
        return actual < level ? "(\(text))" : text
    }

    private static func call(_ name: String, _ arguments: [ModNode]) -> String {
        "\(name)(\(arguments.map(print).joined(separator: ", ")))"
    }
}
