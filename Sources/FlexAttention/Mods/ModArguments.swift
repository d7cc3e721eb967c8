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
        var key = ""
        Self.lift(node, key: &key, arguments: &arguments)
        return (key, arguments)
    }

    private static func lift(_ node: ModNode, key: inout String, arguments: inout ModArguments) {
        func scalar(_ value: ModScalar) {
            arguments.scalars.append(value)
            key += "$\(value.type)"
        }
        func application(_ name: String, _ operands: [ModNode]) {
            key += "(" + name
            for operand in operands {
                key += " "
                lift(operand, key: &key, arguments: &arguments)
            }
            key += ")"
        }
        switch node {
        case .variable(let variable): key += variable.rawValue
        case .int(let value): scalar(.int(value))
        case .float(let value): scalar(.float(value))
        case .parameter(let parameter): scalar(parameter.value)
        case .unary(let op, let x): application(op.rawValue, [x])
        case .binary(let op, let x, let y): application(op.rawValue, [x, y])
        case .clamp(let x, let y, let z): application("clamp", [x, y, z])
        case .select(let x, let y, let z): application("where", [x, y, z])
        case .lookup(let table, let indices):
            let slot = arguments.tables.firstIndex(of: table) ?? arguments.tables.count
            if slot == arguments.tables.count { arguments.tables.append(table) }
            application("t\(slot):\(table.elementType):\(table.shape.count)", indices)
        }
    }
}
