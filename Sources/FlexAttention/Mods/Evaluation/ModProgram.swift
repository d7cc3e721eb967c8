/// A register of a ``ModProgram``: its type and its index among the registers of that type.
struct ModRegister: Hashable {
    var type: ModType
    var index: Int
}

/// One step of a ``ModProgram``. Operands and results are registers; every step is defined for all inputs
/// (Int arithmetic wraps, division by zero gives 0, table indices are clamped), so running a program never traps.
enum ModInstruction {
    case variable(ModVariable, ModRegister)
    case intConstant(Int, ModRegister)
    case floatConstant(Float, ModRegister)
    case unary(ModUnaryOperator, ModRegister, ModRegister)
    case binary(ModBinaryOperator, ModRegister, ModRegister, ModRegister)
    case select(ModRegister, ModRegister, ModRegister, ModRegister)
    /// Reads table `slot` of ``ModProgram/tables`` at the index registers `indices` of
    /// ``ModProgram/indexRegisters`` (kept aside so that instructions hold no references to retain).
    case lookup(slot: Int, indices: Range<Int>, ModRegister)
}

/// Expressions compiled once to a flat list of instructions over typed registers, shared subexpressions
/// computed once. The same program runs over 16 lanes of a tile (``ModTileMachine``) or over intervals
/// (``ModIntervalMachine``).
struct ModProgram: Sendable {
    private(set) var instructions: [ModInstruction] = []
    /// The index registers of all lookups.
    private(set) var indexRegisters: [ModRegister] = []
    /// The tables read, by slot.
    private(set) var tables: [ModTable] = []
    /// The register holding each compiled expression, in the order given.
    private(set) var outputs: [ModRegister] = []
    /// How many registers of each type the program uses.
    private(set) var registerCounts: [ModType: Int] = [.int: 0, .float: 0, .bool: 0]

    private var registers: [ModNode: ModRegister] = [:]

    /// Compiles `expressions`, which must be valid (see ``ModNode/validate()``).
    init(_ expressions: [ModNode]) {
        outputs = expressions.map { expression in
            // Parts shared with earlier expressions (a derivative reuses its mod's nodes) are not walked again.
            for node in expression.uniqueNodes(stoppingAt: { registers[$0] != nil }) where registers[node] == nil {
                registers[node] = emit(node)
            }
            return registers[expression] ?? ModRegister(type: expression.type, index: 0)
        }
        registers = [:]
    }

    /// Emits `node`, whose operands are emitted already.
    private mutating func emit(_ node: ModNode) -> ModRegister {
        func operand(_ x: ModNode) -> ModRegister { registers[x] ?? ModRegister(type: x.type, index: 0) }
        switch node.operation {
        case .variable(let variable): return append(node.type) { .variable(variable, $0) }
        case .int(let value): return append(.int) { .intConstant(value, $0) }
        case .float(let value): return append(.float) { .floatConstant(value, $0) }
        case .parameter(let parameter):
            switch parameter.value {
            case .int(let value): return append(.int) { .intConstant(value, $0) }
            case .float(let value): return append(.float) { .floatConstant(value, $0) }
            }
        case .unary(let op, let x):
            return append(node.type) { [x = operand(x)] in .unary(op, x, $0) }
        case .binary(let op, let x, let y):
            return append(node.type) { [x = operand(x), y = operand(y)] in .binary(op, x, y, $0) }
        case .clamp(let x, let low, let high):
            let raised = append(node.type) { [x = operand(x), low = operand(low)] in .binary(.max, x, low, $0) }
            return append(node.type) { [high = operand(high)] in .binary(.min, raised, high, $0) }
        case .select(let condition, let x, let y):
            return append(node.type) { [c = operand(condition), x = operand(x), y = operand(y)] in .select(c, x, y, $0) }
        case .lookup(let table, let indices):
            let slot = tables.firstIndex(of: table) ?? tables.count
            if slot == tables.count { tables.append(table) }
            let range = indexRegisters.count..<indexRegisters.count + indices.count
            indexRegisters += indices.map(operand)
            return append(node.type) { .lookup(slot: slot, indices: range, $0) }
        }
    }

    /// Appends the instruction writing a new register of `type`.
    private mutating func append(_ type: ModType, _ instruction: (ModRegister) -> ModInstruction) -> ModRegister {
        let result = ModRegister(type: type, index: registerCounts[type, default: 0])
        registerCounts[type, default: 0] += 1
        instructions.append(instruction(result))
        return result
    }
}
