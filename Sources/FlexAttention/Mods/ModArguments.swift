/// The run-time arguments of an expression, separated from its structure so that a compiled kernel can be
/// reused when only values change: a different window size, sequence length or table gives the same
/// ``ModExpression/structuralKey`` and new ``ModExpression/arguments``.
public struct ModArguments: Equatable, Sendable {
    /// Every literal and parameter value, in the order of a depth-first, left-to-right walk of the expression.
    public var scalars: [ModScalar] = []
    /// Each distinct table, in order of first use in the same walk.
    public var tables: [ModTable] = []
}

extension ModExpression {
    /// The literals, parameters and tables, in a stable order (see ``structuralKey``).
    public var arguments: ModArguments { lifted.arguments }

    /// The expression with every literal and parameter written `$int` or `$float` (the n-th is the n-th of
    /// ``ModArguments/scalars``) and every table written `tN:TYPE:RANK` (the N-th of ``ModArguments/tables``):
    /// equal keys mean one compiled kernel serves both expressions.
    public var structuralKey: String { lifted.key }

    private var lifted: (key: String, arguments: ModArguments) {
        var arguments = ModArguments()
        let nodes = node.uniqueNodes
        for node in nodes {
            switch node.operation {
            case .int(let value): arguments.scalars.append(.int(value))
            case .float(let value): arguments.scalars.append(.float(value))
            case .parameter(let parameter): arguments.scalars.append(parameter.value)
            case .lookup(let table, _) where !arguments.tables.contains(table): arguments.tables.append(table)
            default: break
            }
        }
        return (Self.key(node, uses: ModNode.useCounts(nodes), tables: arguments.tables), arguments)
    }

    /// The key, written depth-first: a node that several operations share (other than a variable) is labelled
    /// `#k=` where it first appears and written `#k` after, so the key is linear in the size of the DAG and tells
    /// apart one shared argument slot from two slots.
    private static func key(_ root: ModNode, uses: [ObjectIdentifier: Int], tables: [ModTable]) -> String {
        enum Item { case node(ModNode), text(String) }
        var labels: [ObjectIdentifier: Int] = [:]
        var key = ""
        var pending = [Item.node(root)]
        while let item = pending.popLast() {
            guard case .node(let node) = item else {
                if case .text(let text) = item { key += text }
                continue
            }
            if let label = labels[node.identity] {
                key += "#\(label)"
                continue
            }
            let name: String
            if case .variable(let variable) = node.operation {
                key += variable.rawValue
                continue
            }
            if uses[node.identity, default: 0] > 1 {
                labels[node.identity] = labels.count
                key += "#\(labels.count - 1)="
            }
            switch node.operation {
            case .variable: continue
            case .int, .float, .parameter: key += "$\(node.type)"; continue
            case .unary(let op, _): name = op.rawValue
            case .binary(let op, _, _): name = op.rawValue
            case .clamp: name = "clamp"
            case .select: name = "where"
            case .lookup(let table, _):
                name = "t\(tables.firstIndex(of: table) ?? 0):\(table.elementType):\(table.shape.count)"
            }
            key += "(" + name
            pending.append(.text(")"))
            for operand in node.children.reversed() { pending += [.node(operand), .text(" ")] }
        }
        return key
    }
}
