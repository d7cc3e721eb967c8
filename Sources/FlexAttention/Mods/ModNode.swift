/// What a ``ModNode`` computes: a leaf, or an operator over other nodes.
enum ModOperation: Sendable {
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

    /// The same operation over `operands` (as many as ``children``, in order).
    func replacingChildren(_ operands: [ModNode]) -> ModOperation {
        switch self {
        case .variable, .int, .float, .parameter: self
        case .unary(let op, _): .unary(op, operands[0])
        case .binary(let op, _, _): .binary(op, operands[0], operands[1])
        case .clamp: .clamp(operands[0], operands[1], operands[2])
        case .select: .select(operands[0], operands[1], operands[2])
        case .lookup(let table, _): .lookup(table, operands)
        }
    }

    /// Whether the two operations agree in everything but their operands (Floats compared bit for bit).
    func matchesApartFromOperands(_ other: ModOperation) -> Bool {
        switch (self, other) {
        case let (.variable(x), .variable(y)): x == y
        case let (.int(x), .int(y)): x == y
        case let (.float(x), .float(y)): x.bitPattern == y.bitPattern
        case let (.parameter(x), .parameter(y)): x.name == y.name && x.value.bits == y.value.bits
        case let (.unary(x, _), .unary(y, _)): x == y
        case let (.binary(x, _, _), .binary(y, _, _)): x == y
        case (.clamp, .clamp), (.select, .select): true
        case let (.lookup(x, a), .lookup(y, b)): a.count == b.count && x == y
        default: false
        }
    }

    fileprivate func hashApartFromOperands(into hasher: inout Hasher) {
        switch self {
        case .variable(let variable): hasher.combine(0); hasher.combine(variable)
        case .int(let value): hasher.combine(1); hasher.combine(value)
        case .float(let value): hasher.combine(2); hasher.combine(value.bitPattern)
        case .parameter(let parameter): hasher.combine(3); hasher.combine(parameter.name)
        case .unary(let op, _): hasher.combine(4); hasher.combine(op)
        case .binary(let op, _, _): hasher.combine(5); hasher.combine(op)
        case .clamp: hasher.combine(6)
        case .select: hasher.combine(7)
        case .lookup(let table, _): hasher.combine(8); hasher.combine(table)
        }
    }
}

/// One node of a mod expression: an immutable DAG whose shared subexpressions are shared references.
///
/// What every analysis needs of a node (its type, which variables it reads, its height, a structural hash) is
/// computed once when the node is made, from its operands', so none of them walks the expression. Walks go over
/// ``uniqueNodes`` (each shared node once) without recursion, so neither the size of a traced DAG nor the depth of
/// a long chain can blow up time or the stack.
struct ModNode: Hashable, Sendable {
    fileprivate var storage: ModNodeStorage

    init(_ operation: ModOperation) { storage = ModNodeStorage(operation) }

    var operation: ModOperation { storage.operation }
    /// The type of a well-formed node (a malformed one is refused by ``validate()``).
    var type: ModType { storage.type }
    /// 1 for a leaf, else 1 + the largest operand's height.
    var height: Int { storage.height }
    /// The direct operands, in order.
    var children: [ModNode] { storage.operation.children }
    /// Identifies this node (not its structure) while it is alive.
    var identity: ObjectIdentifier { ObjectIdentifier(storage) }

    /// Whether the value depends on `variable`.
    func reads(_ variable: ModVariable) -> Bool { storage.variables & variable.bit != 0 }

    static func == (x: ModNode, y: ModNode) -> Bool {
        if x.storage === y.storage { return true }
        // Pairs already found equal are not compared again, so shared operands keep this linear.
        var pending = [(x, y)]
        var compared: Set<IdentityPair> = []
        while let (a, b) = pending.popLast() {
            guard a.storage !== b.storage, compared.insert(IdentityPair(a.identity, b.identity)).inserted else { continue }
            guard a.storage.hash == b.storage.hash, a.height == b.height,
                  a.operation.matchesApartFromOperands(b.operation) else { return false }
            pending += zip(a.children, b.children)
        }
        return true
    }

    func hash(into hasher: inout Hasher) { hasher.combine(storage.hash) }

    private struct IdentityPair: Hashable {
        let first: ObjectIdentifier
        let second: ObjectIdentifier

        init(_ first: ObjectIdentifier, _ second: ObjectIdentifier) { (self.first, self.second) = (first, second) }
    }
}

/// The storage of a ``ModNode``. Immutable once made: `operation` changes only in `deinit`'s unlinking of nodes
/// no one else references, hence `@unchecked Sendable`.
private final class ModNodeStorage: @unchecked Sendable {
    var operation: ModOperation
    let type: ModType
    let height: Int
    let variables: UInt8
    let hash: Int

    init(_ operation: ModOperation) {
        self.operation = operation
        let children = operation.children
        type = operation.resultType
        height = 1 + (children.map(\.height).max() ?? 0)
        var variables: UInt8 = 0
        var hasher = Hasher()
        operation.hashApartFromOperands(into: &hasher)
        for child in children {
            variables |= child.storage.variables
            hasher.combine(child.storage.hash)
        }
        if case .variable(let variable) = operation { variables |= variable.bit }
        self.variables = variables
        hash = hasher.finalize()
    }

    /// Releases a long chain of nodes one by one: the default, recursive release would overflow the stack.
    deinit {
        var pending = operation.children
        guard !pending.isEmpty else { return }
        operation = .int(0)
        while var node = pending.popLast() {
            guard isKnownUniquelyReferenced(&node.storage) else { continue }
            pending += node.storage.operation.children
            node.storage.operation = .int(0)
        }
    }
}

extension ModOperation {
    /// The type of a well-formed operation, from its operands' types.
    var resultType: ModType {
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
}

extension ModVariable {
    fileprivate var bit: UInt8 { 1 << UInt8(Self.allCases.firstIndex(of: self) ?? 0) }
}

extension ModScalar {
    /// The value's bits, so that equal-looking Floats (0.0 and -0.0, NaNs) compare as the printer writes them.
    fileprivate var bits: UInt64 {
        switch self {
        case .int(let value): UInt64(bitPattern: Int64(value))
        case .float(let value): UInt64(value.bitPattern) | 1 << 32
        }
    }
}

/// The constructors, named as the operations, so that building reads like the tree it builds.
extension ModNode {
    static func variable(_ variable: ModVariable) -> ModNode { ModNode(.variable(variable)) }
    static func int(_ value: Int) -> ModNode { ModNode(.int(value)) }
    static func float(_ value: Float) -> ModNode { ModNode(.float(value)) }
    static func parameter(_ parameter: ModParameter) -> ModNode { ModNode(.parameter(parameter)) }
    static func unary(_ op: ModUnaryOperator, _ x: ModNode) -> ModNode { ModNode(.unary(op, x)) }
    static func binary(_ op: ModBinaryOperator, _ x: ModNode, _ y: ModNode) -> ModNode { ModNode(.binary(op, x, y)) }
    static func clamp(_ x: ModNode, _ low: ModNode, _ high: ModNode) -> ModNode { ModNode(.clamp(x, low, high)) }
    static func select(_ c: ModNode, _ x: ModNode, _ y: ModNode) -> ModNode { ModNode(.select(c, x, y)) }
    static func lookup(_ table: ModTable, _ indices: [ModNode]) -> ModNode { ModNode(.lookup(table, indices)) }
}
