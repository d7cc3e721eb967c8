import FlexAttentionSIMD

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The values of a program's inputs for 16 lanes that share a key: lane `i` is query `firstQuery + i`.
struct ModLanes {
    var batch: Int
    var head: Int
    var firstQuery: Int
    var key: Int
    var queryLength: Int
    var keyLength: Int
    var score: SIMD16<Float> = .zero
    /// Lanes at and past this one lie outside the tile: their faults are not reported.
    var activeLanes: Int = 16
}

/// Runs a ``ModProgram`` 16 lanes at a time. Each instruction is one vector operation over the lanes, so the
/// cost of dispatching it is shared by 16 elements; registers live in memory the caller lends.
struct ModTileMachine: ~Copyable {
    let program: ModProgram
    private let ints: UnsafeMutablePointer<SIMD16<Int>>
    private let floats: UnsafeMutablePointer<SIMD16<Float>>
    private let bools: UnsafeMutablePointer<SIMDMask<SIMD16<Int32>>>
    /// The first place seen where the program left its domain (a table index out of range, an Int division by
    /// zero), when faults are being watched.
    private(set) var fault: ModError?

    init(_ program: ModProgram) {
        self.program = program
        ints = .allocate(capacity: max(1, program.registerCounts[.int, default: 0]))
        floats = .allocate(capacity: max(1, program.registerCounts[.float, default: 0]))
        bools = .allocate(capacity: max(1, program.registerCounts[.bool, default: 0]))
    }

    deinit {
        ints.deallocate()
        floats.deallocate()
        bools.deallocate()
    }

    func int(_ register: ModRegister) -> SIMD16<Int> { ints[register.index] }
    func float(_ register: ModRegister) -> SIMD16<Float> { floats[register.index] }
    func bool(_ register: ModRegister) -> SIMDMask<SIMD16<Int32>> { bools[register.index] }

    /// Runs every instruction on `lanes`; with `watchingFaults` it records the first fault among active lanes.
    mutating func run(_ lanes: ModLanes, watchingFaults: Bool = false) {
        for instruction in program.instructions {
            switch instruction {
            case .variable(let variable, let r):
                switch variable {
                case .b: ints[r.index] = SIMD16(repeating: lanes.batch)
                case .h: ints[r.index] = SIMD16(repeating: lanes.head)
                case .q: ints[r.index] = SIMD16(repeating: lanes.firstQuery) &+ Self.laneIndex
                case .kv: ints[r.index] = SIMD16(repeating: lanes.key)
                case .queryLength: ints[r.index] = SIMD16(repeating: lanes.queryLength)
                case .keyLength: ints[r.index] = SIMD16(repeating: lanes.keyLength)
                case .score: floats[r.index] = lanes.score
                }
            case .intConstant(let value, let r): ints[r.index] = SIMD16(repeating: value)
            case .floatConstant(let value, let r): floats[r.index] = SIMD16(repeating: value)
            case .unary(let op, let x, let r): unary(op, x, r)
            case .binary(let op, let x, let y, let r):
                switch x.type {
                case .int: intBinary(op, int(x), int(y), r, lanes: lanes, watchingFaults: watchingFaults)
                case .float: floatBinary(op, float(x), float(y), r)
                case .bool: boolBinary(op, bool(x), bool(y), r)
                }
            case .select(let c, let x, let y, let r):
                let condition = bool(c)
                switch r.type {
                case .int: ints[r.index] = int(y).replacing(with: int(x), where: Self.widen(condition))
                case .float: floats[r.index] = float(y).replacing(with: float(x), where: condition)
                case .bool: bools[r.index] = (condition .& bool(x)) .| (.!condition .& bool(y))
                }
            case .lookup(let slot, let indices, let r):
                lookup(
                    program.tables[slot], program.indexRegisters[indices], r, lanes: lanes, watchingFaults: watchingFaults)
            }
        }
    }

    private static let laneIndex = SIMD16<Int>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    // A mask is its lanes' all-ones or zero bits, so converting between lane widths is a vector truncation or
    // sign extension of those bits (building it with `replacing` instead costs ten times more).
    private static func narrow(_ mask: SIMDMask<SIMD16<Int>>) -> SIMDMask<SIMD16<Int32>> {
        unsafeBitCast(SIMD16<Int32>(truncatingIfNeeded: unsafeBitCast(mask, to: SIMD16<Int>.self)), to: SIMDMask<SIMD16<Int32>>.self)
    }

    private static func widen(_ mask: SIMDMask<SIMD16<Int32>>) -> SIMDMask<SIMD16<Int>> {
        unsafeBitCast(SIMD16<Int>(truncatingIfNeeded: unsafeBitCast(mask, to: SIMD16<Int32>.self)), to: SIMDMask<SIMD16<Int>>.self)
    }

    private mutating func unary(_ op: ModUnaryOperator, _ x: ModRegister, _ r: ModRegister) {
        switch (op, x.type) {
        case (.not, _): bools[r.index] = .!bool(x)
        case (.negate, .int): ints[r.index] = 0 &- int(x)
        case (.abs, .int): ints[r.index] = int(x).replacing(with: 0 &- int(x), where: int(x) .< 0)
        case (.float, _): floats[r.index] = SIMD16<Float>(int(x))
        case (.negate, _): floats[r.index] = -float(x)
        case (.abs, _): floats[r.index] = float(x).replacing(with: -float(x), where: float(x) .< 0)
        case (.exp, _): floats[r.index] = exp2Lanes(float(x) * Float.log2e)
        case (.tanh, _): floats[r.index] = Self.tanh(float(x))
        case (.sqrt, _): floats[r.index] = float(x).squareRoot()
        case (.log, _):
            var result = float(x)
            for lane in 0..<16 { result[lane] = logf(result[lane]) }
            floats[r.index] = result
        }
    }

    /// tanh from one vector exponential: tanh|x| = (1 − e^(−2|x|)) / (1 + e^(−2|x|)), with an odd Taylor
    /// polynomial near 0, where that quotient loses relative precision.
    private static func tanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let magnitude = x.replacing(with: -x, where: x .< 0)
        let e = exp2Lanes(magnitude * (-2 * Float.log2e))
        var result = (1 - e) / (1 + e)
        let x2 = x * x
        var series = x2 * SIMD16(repeating: -17.0 / 315) + SIMD16(repeating: 2.0 / 15)
        series = x2 * series + SIMD16(repeating: -1.0 / 3)
        series = x * (x2 * series + SIMD16(repeating: 1))
        result = result.replacing(with: -result, where: x .< 0)
        return result.replacing(with: series, where: magnitude .< 0.125)
    }

    private mutating func intBinary(
        _ op: ModBinaryOperator, _ x: SIMD16<Int>, _ y: SIMD16<Int>, _ r: ModRegister, lanes: ModLanes,
        watchingFaults: Bool
    ) {
        switch op {
        case .add: ints[r.index] = x &+ y
        case .subtract: ints[r.index] = x &- y
        case .multiply: ints[r.index] = x &* y
        case .min: ints[r.index] = y.replacing(with: x, where: x .<= y)
        case .max: ints[r.index] = y.replacing(with: x, where: x .>= y)
        case .divide, .remainder:
            var result = SIMD16<Int>.zero
            for lane in 0..<16 {
                if watchingFaults, y[lane] == 0, lane < lanes.activeLanes, fault == nil {
                    fault = .divisionByZero(at: [lanes.batch, lanes.head, lanes.firstQuery + lane, lanes.key])
                }
                result[lane] = op == .divide
                    ? IntegerDivision.quotient(x[lane], y[lane]) : IntegerDivision.remainder(x[lane], y[lane])
            }
            ints[r.index] = result
        case .equal: bools[r.index] = Self.narrow(x .== y)
        case .notEqual: bools[r.index] = Self.narrow(x .!= y)
        case .less: bools[r.index] = Self.narrow(x .< y)
        case .lessEqual: bools[r.index] = Self.narrow(x .<= y)
        case .greater: bools[r.index] = Self.narrow(x .> y)
        case .greaterEqual: bools[r.index] = Self.narrow(x .>= y)
        case .and, .or: break
        }
    }

    private mutating func floatBinary(_ op: ModBinaryOperator, _ x: SIMD16<Float>, _ y: SIMD16<Float>, _ r: ModRegister) {
        switch op {
        case .add: floats[r.index] = x + y
        case .subtract: floats[r.index] = x - y
        case .multiply: floats[r.index] = x * y
        case .divide: floats[r.index] = x / y
        case .remainder: floats[r.index] = x - (x / y).rounded(.down) * y
        case .min: floats[r.index] = y.replacing(with: x, where: x .<= y)
        case .max: floats[r.index] = y.replacing(with: x, where: x .>= y)
        case .equal: bools[r.index] = x .== y
        case .notEqual: bools[r.index] = x .!= y
        case .less: bools[r.index] = x .< y
        case .lessEqual: bools[r.index] = x .<= y
        case .greater: bools[r.index] = x .> y
        case .greaterEqual: bools[r.index] = x .>= y
        case .and, .or: break
        }
    }

    private mutating func boolBinary(
        _ op: ModBinaryOperator, _ x: SIMDMask<SIMD16<Int32>>, _ y: SIMDMask<SIMD16<Int32>>, _ r: ModRegister
    ) {
        switch op {
        case .and: bools[r.index] = x .& y
        case .or: bools[r.index] = x .| y
        case .equal: bools[r.index] = .!(x .^ y)
        case .notEqual: bools[r.index] = x .^ y
        default: break
        }
    }

    private mutating func lookup(
        _ table: ModTable, _ indices: ArraySlice<ModRegister>, _ r: ModRegister, lanes: ModLanes, watchingFaults: Bool
    ) {
        var offsets = SIMD16<Int>.zero
        var stride = 1
        for (axis, register) in indices.enumerated().reversed() {
            let extent = table.shape[axis]
            let index = int(register)
            let clamped = index.clamped(lowerBound: .zero, upperBound: SIMD16(repeating: extent - 1))
            if watchingFaults, fault == nil, any((index .!= clamped) .& (Self.laneIndex .< lanes.activeLanes)) {
                let lane = (0..<lanes.activeLanes).first { index[$0] != clamped[$0] } ?? 0
                fault = .tableIndexOutOfRange(
                    table: table.name, axis: axis, index: index[lane], extent: extent,
                    at: [lanes.batch, lanes.head, lanes.firstQuery + lane, lanes.key])
            }
            offsets &+= clamped &* stride
            stride *= extent
        }
        switch table.elements {
        case .int32(let values):
            var result = SIMD16<Int>.zero
            values.withUnsafeBufferPointer { for lane in 0..<16 { result[lane] = Int($0[offsets[lane]]) } }
            ints[r.index] = result
        case .float(let values):
            var result = SIMD16<Float>.zero
            values.withUnsafeBufferPointer { for lane in 0..<16 { result[lane] = $0[offsets[lane]] } }
            floats[r.index] = result
        }
    }
}
