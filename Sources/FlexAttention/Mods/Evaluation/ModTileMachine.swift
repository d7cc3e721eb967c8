import FlexAttentionSIMD

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a ``ModProgram`` over up to ``capacity`` chunks of 16 lanes (``ModChunks``) at once, one instruction
/// over every chunk before the next: dispatching an instruction is paid once per run, not once per chunk, and
/// the loop over chunks is a plain vector loop. A register holds one vector per chunk.
struct ModTileMachine: ~Copyable {
    /// The most chunks one run takes: 1,024 scores, so that a Float register (4 KiB) and its neighbours stay in
    /// the L1 cache while every instruction sweeps them.
    static let maximumChunks = 64

    let capacity: Int
    private let program: ModProgram
    // The program's arrays copied out once, so that running it retains nothing.
    private let instructions: UnsafeMutableBufferPointer<ModInstruction>
    private let indexRegisters: UnsafeMutableBufferPointer<ModRegister>
    private let intStorage: UnsafeMutablePointer<SIMD16<Int>>
    private let floatStorage: UnsafeMutablePointer<SIMD16<Float>>
    private let boolStorage: UnsafeMutablePointer<SIMDMask<SIMD16<Int32>>>
    /// Table offsets of a lookup being run, one vector per chunk.
    private let offsets: UnsafeMutablePointer<SIMD16<Int>>
    /// Where the caller writes the scores of the chunks before a run: the `score` register itself when the
    /// program reads it (so the run copies nothing), else a spare register.
    let scores: UnsafeMutablePointer<SIMD16<Float>>
    /// The first place seen where the program left its domain (a table index out of range, an Int division by
    /// zero), when faults are being watched.
    private(set) var fault: ModError?
    /// The chunk of the current run that `fault` was found in: a fault in an earlier chunk replaces it, so the
    /// fault reported is the first in chunk order, then in instruction order, as if chunks ran one by one.
    private var faultChunk = Int.max

    /// A machine for `program` running pieces (see ``ModChunks/forEachPiece(capacity:_:)``) of `chunkCount` chunks
    /// or more.
    init(_ program: ModProgram, chunkCount: Int) {
        self.program = program
        capacity = max(1, min(Self.maximumChunks, chunkCount))
        instructions = .allocate(capacity: program.instructions.count)
        _ = instructions.initialize(from: program.instructions)
        indexRegisters = .allocate(capacity: program.indexRegisters.count)
        _ = indexRegisters.initialize(from: program.indexRegisters)
        intStorage = .allocate(capacity: capacity * max(1, program.registerCounts[.int, default: 0]))
        floatStorage = .allocate(capacity: capacity * (program.registerCounts[.float, default: 0] + 1))
        boolStorage = .allocate(capacity: capacity * max(1, program.registerCounts[.bool, default: 0]))
        offsets = .allocate(capacity: capacity)
        var scores = floatStorage + capacity * program.registerCounts[.float, default: 0]
        for instruction in program.instructions {
            switch instruction {
            // Every register is written by one instruction only, so constants are written here once.
            case .intConstant(let value, let r):
                (intStorage + r.index * capacity).initialize(repeating: SIMD16(repeating: value), count: capacity)
            case .floatConstant(let value, let r):
                (floatStorage + r.index * capacity).initialize(repeating: SIMD16(repeating: value), count: capacity)
            case .variable(.score, let r): scores = floatStorage + r.index * capacity
            default: break
            }
        }
        self.scores = scores
    }

    deinit {
        instructions.deallocate()
        indexRegisters.deallocate()
        intStorage.deallocate()
        floatStorage.deallocate()
        boolStorage.deallocate()
        offsets.deallocate()
    }

    /// Register `r`, one vector per chunk.
    func ints(_ r: ModRegister) -> UnsafeMutablePointer<SIMD16<Int>> { intStorage + r.index &* capacity }
    func floats(_ r: ModRegister) -> UnsafeMutablePointer<SIMD16<Float>> { floatStorage + r.index &* capacity }
    func bools(_ r: ModRegister) -> UnsafeMutablePointer<SIMDMask<SIMD16<Int32>>> { boolStorage + r.index &* capacity }

    /// Runs every instruction on `chunks` (at most ``capacity``), whose scores are in ``scores``; with
    /// `watchingFaults` it records the first fault among the chunks' queries.
    mutating func run(_ chunks: ModChunks, watchingFaults: Bool = false) {
        let n = chunks.count
        // Callers pass pieces cut by `ModChunks.forEachPiece(capacity:)`; no user input reaches this count. A
        // violation would be a library bug that writes past the registers, so it stops here instead.
        precondition(n <= capacity, "more chunks than the machine holds")
        faultChunk = fault == nil ? Int.max : -1
        for instruction in instructions {
            switch instruction {
            case .variable(let variable, let r): load(variable, into: r, chunks)
            case .intConstant, .floatConstant: break
            case .unary(let op, let x, let r): unary(op, x, r, n)
            case .binary(let op, let x, let y, let r):
                switch x.type {
                case .int: intBinary(op, x, y, r, chunks, watchingFaults: watchingFaults)
                case .float: floatBinary(op, x, y, r, n)
                case .bool: boolBinary(op, x, y, r, n)
                }
            case .select(let c, let x, let y, let r):
                switch r.type {
                case .int: map(bools(c), ints(x), ints(y), into: ints(r), n) { $2.replacing(with: $1, where: Self.widen($0)) }
                case .float: map(bools(c), floats(x), floats(y), into: floats(r), n) { $2.replacing(with: $1, where: $0) }
                case .bool: map(bools(c), bools(x), bools(y), into: bools(r), n) { ($0 .& $1) .| (.!$0 .& $2) }
                }
            case .lookup(let slot, let indices, let r):
                lookup(program.tables[slot], indices, r, chunks, watchingFaults: watchingFaults)
            }
        }
    }

    private func load(_ variable: ModVariable, into r: ModRegister, _ chunks: ModChunks) {
        let n = chunks.count
        switch variable {
        case .b: ints(r).update(repeating: SIMD16(repeating: chunks.batch), count: n)
        case .h: ints(r).update(repeating: SIMD16(repeating: chunks.head), count: n)
        case .queryLength: ints(r).update(repeating: SIMD16(repeating: chunks.queryLength), count: n)
        case .keyLength: ints(r).update(repeating: SIMD16(repeating: chunks.keyLength), count: n)
        case .q:
            let lane = SIMD16<Int>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
            let values = ints(r)
            chunks.forEachChunk { c, _, firstQuery, _ in values[c] = SIMD16(repeating: firstQuery) &+ lane }
        case .kv:
            let values = ints(r)
            chunks.forEachChunk { c, key, _, _ in values[c] = SIMD16(repeating: key) }
        case .score: break
        }
    }

    // A mask is its lanes' all-ones or zero bits, so converting between lane widths is a vector truncation or
    // sign extension of those bits (building it with `replacing` instead costs ten times more).
    private static func narrow(_ mask: SIMDMask<SIMD16<Int>>) -> SIMDMask<SIMD16<Int32>> {
        unsafeBitCast(SIMD16<Int32>(truncatingIfNeeded: unsafeBitCast(mask, to: SIMD16<Int>.self)), to: SIMDMask<SIMD16<Int32>>.self)
    }

    private static func widen(_ mask: SIMDMask<SIMD16<Int32>>) -> SIMDMask<SIMD16<Int>> {
        unsafeBitCast(SIMD16<Int>(truncatingIfNeeded: unsafeBitCast(mask, to: SIMD16<Int32>.self)), to: SIMDMask<SIMD16<Int>>.self)
    }

    private func unary(_ op: ModUnaryOperator, _ x: ModRegister, _ r: ModRegister, _ n: Int) {
        switch (op, x.type) {
        case (.not, _): map(bools(x), into: bools(r), n) { .!$0 }
        case (.negate, .int): map(ints(x), into: ints(r), n) { 0 &- $0 }
        case (.abs, .int): map(ints(x), into: ints(r), n) { $0.replacing(with: 0 &- $0, where: $0 .< 0) }
        case (.float, _): map(ints(x), into: floats(r), n) { SIMD16<Float>($0) }
        case (.negate, _): map(floats(x), into: floats(r), n) { -$0 }
        case (.abs, _): map(floats(x), into: floats(r), n) { $0.replacing(with: -$0, where: $0 .< 0) }
        case (.exp, _): map(floats(x), into: floats(r), n) { exp2Lanes($0 * Float.log2e) }
        case (.tanh, _): map(floats(x), into: floats(r), n) { tanhLanes($0) }
        case (.sqrt, _): map(floats(x), into: floats(r), n) { $0.squareRoot() }
        case (.log, _):
            map(floats(x), into: floats(r), n) {
                var result = $0
                for lane in 0..<16 { result[lane] = logf(result[lane]) }
                return result
            }
        }
    }

    private mutating func intBinary(
        _ op: ModBinaryOperator, _ x: ModRegister, _ y: ModRegister, _ r: ModRegister, _ chunks: ModChunks,
        watchingFaults: Bool
    ) {
        let (xs, ys, n) = (ints(x), ints(y), chunks.count)
        switch op {
        case .add: map(xs, ys, into: ints(r), n) { $0 &+ $1 }
        case .subtract: map(xs, ys, into: ints(r), n) { $0 &- $1 }
        case .multiply: map(xs, ys, into: ints(r), n) { $0 &* $1 }
        case .min: map(xs, ys, into: ints(r), n) { $1.replacing(with: $0, where: $0 .<= $1) }
        case .max: map(xs, ys, into: ints(r), n) { $1.replacing(with: $0, where: $0 .>= $1) }
        case .divide, .remainder:
            let results = ints(r)
            for c in 0..<n {
                if watchingFaults, c < faultChunk {
                    let (key, firstQuery, lanes) = chunks.chunk(c)
                    if let lane = (0..<lanes).first(where: { ys[c][$0] == 0 }) {
                        record(.divisionByZero(at: [chunks.batch, chunks.head, firstQuery + lane, key]), chunk: c)
                    }
                }
                var result = SIMD16<Int>.zero
                for lane in 0..<16 {
                    result[lane] = op == .divide
                        ? IntegerDivision.quotient(xs[c][lane], ys[c][lane])
                        : IntegerDivision.remainder(xs[c][lane], ys[c][lane])
                }
                results[c] = result
            }
        case .equal: map(xs, ys, into: bools(r), n) { Self.narrow($0 .== $1) }
        case .notEqual: map(xs, ys, into: bools(r), n) { Self.narrow($0 .!= $1) }
        case .less: map(xs, ys, into: bools(r), n) { Self.narrow($0 .< $1) }
        case .lessEqual: map(xs, ys, into: bools(r), n) { Self.narrow($0 .<= $1) }
        case .greater: map(xs, ys, into: bools(r), n) { Self.narrow($0 .> $1) }
        case .greaterEqual: map(xs, ys, into: bools(r), n) { Self.narrow($0 .>= $1) }
        case .and, .or: break
        }
    }

    private func floatBinary(_ op: ModBinaryOperator, _ x: ModRegister, _ y: ModRegister, _ r: ModRegister, _ n: Int) {
        let (xs, ys) = (floats(x), floats(y))
        switch op {
        case .add: map(xs, ys, into: floats(r), n) { $0 + $1 }
        case .subtract: map(xs, ys, into: floats(r), n) { $0 - $1 }
        case .multiply: map(xs, ys, into: floats(r), n) { $0 * $1 }
        case .divide: map(xs, ys, into: floats(r), n) { $0 / $1 }
        case .remainder: map(xs, ys, into: floats(r), n) { $0 - ($0 / $1).rounded(.down) * $1 }
        case .min: map(xs, ys, into: floats(r), n) { $1.replacing(with: $0, where: $0 .<= $1) }
        case .max: map(xs, ys, into: floats(r), n) { $1.replacing(with: $0, where: $0 .>= $1) }
        case .equal: map(xs, ys, into: bools(r), n) { $0 .== $1 }
        case .notEqual: map(xs, ys, into: bools(r), n) { $0 .!= $1 }
        case .less: map(xs, ys, into: bools(r), n) { $0 .< $1 }
        case .lessEqual: map(xs, ys, into: bools(r), n) { $0 .<= $1 }
        case .greater: map(xs, ys, into: bools(r), n) { $0 .> $1 }
        case .greaterEqual: map(xs, ys, into: bools(r), n) { $0 .>= $1 }
        case .and, .or: break
        }
    }

    private func boolBinary(_ op: ModBinaryOperator, _ x: ModRegister, _ y: ModRegister, _ r: ModRegister, _ n: Int) {
        let (xs, ys) = (bools(x), bools(y))
        switch op {
        case .and: map(xs, ys, into: bools(r), n) { $0 .& $1 }
        case .or: map(xs, ys, into: bools(r), n) { $0 .| $1 }
        case .equal: map(xs, ys, into: bools(r), n) { .!($0 .^ $1) }
        case .notEqual: map(xs, ys, into: bools(r), n) { $0 .^ $1 }
        default: break
        }
    }

    /// Indices are clamped into the table; with `watchingFaults`, the first out-of-range one (last axis first,
    /// then lane order) of a chunk is recorded.
    private mutating func lookup(
        _ table: ModTable, _ indices: Range<Int>, _ r: ModRegister, _ chunks: ModChunks, watchingFaults: Bool
    ) {
        let n = chunks.count
        offsets.update(repeating: .zero, count: n)
        var stride = 1
        for axis in (0..<indices.count).reversed() {
            let extent = table.shape[axis]
            let index = ints(indexRegisters[indices.lowerBound + axis])
            let upper = SIMD16(repeating: extent - 1)
            for c in 0..<n {
                let clamped = index[c].clamped(lowerBound: .zero, upperBound: upper)
                if watchingFaults, c < faultChunk, index[c] != clamped {
                    let (key, firstQuery, lanes) = chunks.chunk(c)
                    if let lane = (0..<lanes).first(where: { index[c][$0] != clamped[$0] }) {
                        record(
                            .tableIndexOutOfRange(
                                table: table.name, axis: axis, index: index[c][lane], extent: extent,
                                at: [chunks.batch, chunks.head, firstQuery + lane, key]),
                            chunk: c)
                    }
                }
                offsets[c] &+= clamped &* stride
            }
            stride *= extent
        }
        switch table.elements {
        case .int32(let values):
            values.withUnsafeBufferPointer { values in
                map(offsets, into: ints(r), n) { offsets in
                    var result = SIMD16<Int>.zero
                    for lane in 0..<16 { result[lane] = Int(values[offsets[lane]]) }
                    return result
                }
            }
        case .float(let values):
            values.withUnsafeBufferPointer { values in
                map(offsets, into: floats(r), n) { offsets in
                    var result = SIMD16<Float>.zero
                    for lane in 0..<16 { result[lane] = values[offsets[lane]] }
                    return result
                }
            }
        }
    }

    private mutating func record(_ fault: ModError, chunk: Int) {
        self.fault = fault
        faultChunk = chunk
    }
}

// The loops every instruction runs over the chunks; inlined so that each one compiles to a plain vector loop.
@inline(__always)
private func map<X, R>(_ x: UnsafeMutablePointer<X>, into r: UnsafeMutablePointer<R>, _ n: Int, _ f: (X) -> R) {
    for c in 0..<n { r[c] = f(x[c]) }
}

@inline(__always)
private func map<X, Y, R>(
    _ x: UnsafeMutablePointer<X>, _ y: UnsafeMutablePointer<Y>, into r: UnsafeMutablePointer<R>, _ n: Int,
    _ f: (X, Y) -> R
) {
    for c in 0..<n { r[c] = f(x[c], y[c]) }
}

@inline(__always)
private func map<C, X, Y, R>(
    _ c: UnsafeMutablePointer<C>, _ x: UnsafeMutablePointer<X>, _ y: UnsafeMutablePointer<Y>,
    into r: UnsafeMutablePointer<R>, _ n: Int, _ f: (C, X, Y) -> R
) {
    for i in 0..<n { r[i] = f(c[i], x[i], y[i]) }
}
