#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A rectangle of the score matrix for one set of batches and heads: the region interval analysis bounds.
struct ScoreRegion {
    var batches: Range<Int>
    var heads: Range<Int>
    var queries: Range<Int>
    var keys: Range<Int>

    var elementCount: Int { queries.count * keys.count }
}

/// Runs a ``ModProgram`` over intervals: bounds on every register over a whole ``ScoreRegion``, so that one
/// pass decides whether a mask keeps all, none or some of a region, and whether every table index and Int
/// divisor in it is surely valid.
struct ModIntervalMachine: ~Copyable {
    let program: ModProgram
    private let queryLength: Int
    private let keyLength: Int
    private let extremes: [TableExtremes]
    private let ints: UnsafeMutablePointer<IntInterval>
    private let floats: UnsafeMutablePointer<FloatInterval>
    private let bools: UnsafeMutablePointer<BoolSet>
    /// The index bounds of the lookup being evaluated, one per axis.
    private let box = UnsafeMutablePointer<IntInterval>.allocate(capacity: 3)
    /// Whether the last run found every table index inside its table and no Int divisor that may be 0.
    private(set) var isSafe = true

    init(_ program: ModProgram, queryLength: Int, keyLength: Int, extremes: [TableExtremes]) {
        self.program = program
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.extremes = extremes
        ints = .allocate(capacity: max(1, program.registerCounts[.int, default: 0]))
        floats = .allocate(capacity: max(1, program.registerCounts[.float, default: 0]))
        bools = .allocate(capacity: max(1, program.registerCounts[.bool, default: 0]))
        ints.initialize(repeating: .all, count: max(1, program.registerCounts[.int, default: 0]))
        floats.initialize(repeating: .unknown, count: max(1, program.registerCounts[.float, default: 0]))
        bools.initialize(repeating: .either, count: max(1, program.registerCounts[.bool, default: 0]))
    }

    deinit {
        ints.deallocate()
        floats.deallocate()
        bools.deallocate()
        box.deallocate()
    }

    func bool(_ register: ModRegister) -> BoolSet { bools[register.index] }
    func float(_ register: ModRegister) -> FloatInterval { floats[register.index] }

    /// Bounds every register over `region`, which must not be empty.
    mutating func run(_ region: ScoreRegion) {
        isSafe = true
        for instruction in program.instructions {
            switch instruction {
            case .variable(let variable, let r):
                switch variable {
                case .b: ints[r.index] = IntInterval(region.batches)
                case .h: ints[r.index] = IntInterval(region.heads)
                case .q: ints[r.index] = IntInterval(region.queries)
                case .kv: ints[r.index] = IntInterval(region.keys)
                case .queryLength: ints[r.index] = IntInterval(queryLength)
                case .keyLength: ints[r.index] = IntInterval(keyLength)
                case .score: floats[r.index] = .unknown
                }
            case .intConstant(let value, let r): ints[r.index] = IntInterval(value)
            case .floatConstant(let value, let r): floats[r.index] = FloatInterval(lower: value, upper: value)
            case .unary(let op, let x, let r): unary(op, x, r)
            case .binary(let op, let x, let y, let r):
                switch x.type {
                case .int: intBinary(op, ints[x.index], ints[y.index], r)
                case .float: floatBinary(op, floats[x.index], floats[y.index], r)
                case .bool:
                    let (a, b) = (bools[x.index], bools[y.index])
                    bools[r.index] = switch op {
                    case .and: a && b
                    case .or: a || b
                    case .equal: BoolSet.equal(a, b)
                    default: !BoolSet.equal(a, b)
                    }
                }
            case .select(let c, let x, let y, let r):
                let condition = bools[c.index]
                let takesThen = condition.canBeTrue, takesElse = condition.canBeFalse
                switch r.type {
                case .int: ints[r.index] = Self.choose(takesThen, takesElse, ints[x.index], ints[y.index]) { $0.union($1) }
                case .float: floats[r.index] = Self.choose(takesThen, takesElse, floats[x.index], floats[y.index]) { $0.union($1) }
                case .bool: bools[r.index] = Self.choose(takesThen, takesElse, bools[x.index], bools[y.index]) { $0.union($1) }
                }
            case .lookup(let slot, let indices, let r):
                lookup(slot, program.indexRegisters[indices], r)
            }
        }
    }

    private static func choose<T>(_ then: Bool, _ otherwise: Bool, _ x: T, _ y: T, _ union: (T, T) -> T) -> T {
        then && otherwise ? union(x, y) : then ? x : y
    }

    private mutating func unary(_ op: ModUnaryOperator, _ x: ModRegister, _ r: ModRegister) {
        switch (op, x.type) {
        case (.not, _): bools[r.index] = !bools[x.index]
        case (.negate, .int): ints[r.index] = -ints[x.index]
        case (.abs, .int): ints[r.index] = ints[x.index].magnitude
        case (.float, _): floats[r.index] = FloatInterval(ints[x.index])
        case (.negate, _): floats[r.index] = -floats[x.index]
        case (.abs, _): floats[r.index] = floats[x.index].magnitude
        case (.exp, _): floats[r.index] = floats[x.index].increasing { expf($0) }
        case (.tanh, _): floats[r.index] = floats[x.index].increasing { tanhf($0) }
        case (.sqrt, _):
            let v = floats[x.index]
            floats[r.index] = v.lower >= 0 ? v.increasing { $0.squareRoot() } : .unknown
        case (.log, _):
            let v = floats[x.index]
            floats[r.index] = v.lower > 0 ? v.increasing { logf($0) } : .unknown
        }
    }

    private mutating func intBinary(_ op: ModBinaryOperator, _ x: IntInterval, _ y: IntInterval, _ r: ModRegister) {
        switch op {
        case .add: ints[r.index] = x + y
        case .subtract: ints[r.index] = x - y
        case .multiply: ints[r.index] = x * y
        case .divide, .remainder:
            if y.contains(0) { isSafe = false }
            ints[r.index] = op == .divide ? x.quotient(y) : x.remainder(y)
        case .min: ints[r.index] = .minimum(x, y)
        case .max: ints[r.index] = .maximum(x, y)
        default: bools[r.index] = Self.compare(op, x.lower, x.upper, y.lower, y.upper)
        }
    }

    private mutating func floatBinary(_ op: ModBinaryOperator, _ x: FloatInterval, _ y: FloatInterval, _ r: ModRegister) {
        switch op {
        case .add: floats[r.index] = .corners(x, y, +)
        case .subtract: floats[r.index] = .corners(x, y, -)
        case .multiply: floats[r.index] = .corners(x, y, *)
        case .divide: floats[r.index] = y.lower > 0 || y.upper < 0 ? .corners(x, y, /) : .unknown
        case .remainder: floats[r.index] = .unknown
        case .min: floats[r.index] = .minimum(x, y)
        case .max: floats[r.index] = .maximum(x, y)
        default:
            bools[r.index] = x.mayBeNaN || y.mayBeNaN ? .either : Self.compare(op, x.lower, x.upper, y.lower, y.upper)
        }
    }

    /// Whether `x op y` can be true and can be false for x in `xl...xu`, y in `yl...yu`.
    private static func compare<T: Comparable>(_ op: ModBinaryOperator, _ xl: T, _ xu: T, _ yl: T, _ yu: T) -> BoolSet {
        switch op {
        case .equal: BoolSet(surelyTrue: xl == xu && yl == yu && xl == yl, surelyFalse: xu < yl || yu < xl)
        case .notEqual: !compare(.equal, xl, xu, yl, yu)
        case .less: BoolSet(surelyTrue: xu < yl, surelyFalse: xl >= yu)
        case .lessEqual: BoolSet(surelyTrue: xu <= yl, surelyFalse: xl > yu)
        case .greater: compare(.less, yl, yu, xl, xu)
        default: compare(.lessEqual, yl, yu, xl, xu)
        }
    }

    private mutating func lookup(_ slot: Int, _ indices: ArraySlice<ModRegister>, _ r: ModRegister) {
        let table = extremes[slot]
        for (axis, register) in indices.enumerated() {
            let index = ints[register.index], extent = table.shape[axis]
            if index.lower < 0 || index.upper >= extent { isSafe = false }
            // The tile machine clamps indices the same way.
            let lower = min(max(index.lower, 0), extent - 1), upper = min(max(index.upper, 0), extent - 1)
            box[axis] = IntInterval(lower: lower, upper: upper)
        }
        let (lower, upper) = table.bounds(UnsafeBufferPointer(start: box, count: indices.count))
        switch r.type {
        case .int: ints[r.index] = IntInterval(lower: Int(lower), upper: Int(upper))
        default: floats[r.index] = table.hasNaN ? .unknown : FloatInterval(lower: Float(lower), upper: Float(upper))
        }
    }
}
