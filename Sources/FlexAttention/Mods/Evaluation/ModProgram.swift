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
        outputs = expressions.map { emit($0) }
        registers = [:]
    }

    private mutating func emit(_ node: ModNode) -> ModRegister {
        if let known = registers[node] { return known }
        let instruction: (ModRegister) -> ModInstruction
        switch node {
        case .variable(let variable): instruction = { .variable(variable, $0) }
        case .int(let value): instruction = { .intConstant(value, $0) }
        case .float(let value): instruction = { .floatConstant(value, $0) }
        case .parameter(let parameter):
            switch parameter.value {
            case .int(let value): instruction = { .intConstant(value, $0) }
            case .float(let value): instruction = { .floatConstant(value, $0) }
            }
        case .unary(let op, let x):
            let operand = emit(x)
            instruction = { .unary(op, operand, $0) }
        case .binary(let op, let x, let y):
            let (left, right) = (emit(x), emit(y))
            instruction = { .binary(op, left, right, $0) }
        case .clamp(let x, let low, let high):
            return emit(.binary(.min, .binary(.max, x, low), high))
        case .select(let condition, let x, let y):
            let (c, a, b) = (emit(condition), emit(x), emit(y))
            instruction = { .select(c, a, b, $0) }
        case .lookup(let table, let indices):
            let slot = tables.firstIndex(of: table) ?? tables.count
            if slot == tables.count { tables.append(table) }
            let registers = indices.map { emit($0) }
            let range = indexRegisters.count..<indexRegisters.count + registers.count
            indexRegisters += registers
            instruction = { .lookup(slot: slot, indices: range, $0) }
        }
        let type = node.type
        let result = ModRegister(type: type, index: registerCounts[type, default: 0])
        registerCounts[type, default: 0] += 1
        instructions.append(instruction(result))
        registers[node] = result
        return result
    }
}
