/// Prints expressions in the textual form with the fewest parentheses the precedence rules allow.
///
/// A small expression prints as one formula. One whose formula would be long (a traced DAG that reuses values
/// expands exponentially as a tree) or deep prints with `let` bindings instead: each shared subexpression, and
/// every ``bindingHeight`` levels of a deep one, is bound once, so the text is linear in the size of the DAG and
/// always nests less than ``ModParser/nestingLimit``.
enum ModPrinter {
    /// Binding strength, loosest first; an operand printed at a weaker level than its slot needs parentheses.
    enum Level: Int, Comparable {
        case or, and, not, comparison, additive, multiplicative, unary, atom

        static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// The longest formula printed without bindings, in characters.
    static let formulaLength = 4096
    /// The most levels of operators one formula or binding holds.
    static let bindingHeight = 32

    static func print(_ node: ModNode) -> String {
        let nodes = node.uniqueNodes
        if node.height <= bindingHeight, expandedLength(of: node, nodes: nodes) <= formulaLength {
            return Renderer(names: [:]).render(node).text
        }
        return printWithBindings(node, nodes: nodes)
    }

    /// At most `limit` characters of the textual form, for messages.
    static func excerpt(_ node: ModNode, limit: Int = 160) -> String {
        let text = print(node)
        return text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }

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

    /// The length of the formula without bindings, counting operands once per use; saturates past the limit.
    private static func expandedLength(of root: ModNode, nodes: [ModNode]) -> Int {
        var lengths: [ObjectIdentifier: Int] = [:]
        for node in nodes {
            let operands = node.children.reduce(0) { $0 + (lengths[$1.identity] ?? 0) }
            lengths[node.identity] = min(operands + 8, formulaLength + 1)
        }
        return lengths[root.identity] ?? 0
    }

    /// `let x0 = …; let x1 = …; formula`, binding shared subexpressions and every ``bindingHeight`` levels.
    private static func printWithBindings(_ root: ModNode, nodes: [ModNode]) -> String {
        let uses = ModNode.useCounts(nodes)
        let taken = Set(nodes.compactMap(\.boundName))
        var names: [ObjectIdentifier: String] = [:]
        var inlineHeights: [ObjectIdentifier: Int] = [:]
        var text = ""
        for node in nodes where !node.children.isEmpty {
            let height = 1 + node.children.map { inlineHeights[$0.identity] ?? 0 }.reduce(0, max)
            inlineHeights[node.identity] = height
            guard node.identity != root.identity,
                  uses[node.identity, default: 0] > 1 || height >= bindingHeight else { continue }
            var index = names.count
            while taken.contains("x\(index)") { index += 1 }
            text += "let x\(index) = \(Renderer(names: names).render(node).text); "
            names[node.identity] = "x\(index)"
            inlineHeights[node.identity] = 0
        }
        return text + Renderer(names: names).render(root).text
    }

    /// Renders a formula whose operands named in `names` print as those names; recursion is bounded by
    /// ``bindingHeight``, the most levels a formula holds.
    private struct Renderer {
        let names: [ObjectIdentifier: String]

        func render(_ node: ModNode) -> (text: String, level: Level) {
            if let name = names[node.identity] { return (name, .atom) }
            switch node.operation {
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
                let level = ModPrinter.level(of: op)
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
                return ("\(table.name)[\(indices.map { render($0).text }.joined(separator: ", "))]", .atom)
            }
        }

        private func operand(_ node: ModNode, atLeast level: Level) -> String {
            let (text, actual) = render(node)
            return actual < level ? "(\(text))" : text
        }

        private func call(_ name: String, _ arguments: [ModNode]) -> String {
            "\(name)(\(arguments.map { render($0).text }.joined(separator: ", ")))"
        }
    }
}

extension ModNode {
    /// The name of a table or parameter, which a binding must not take.
    fileprivate var boundName: String? {
        switch operation {
        case .parameter(let parameter): parameter.name
        case .lookup(let table, _): table.name
        default: nil
        }
    }
}
