import Foundation
@testable import FlexAttention

/// A scalar value of the reference evaluator: Floats are carried as Double.
enum ReferenceValue: Equatable {
    case int(Int)
    case real(Double)
    case bool(Bool)

    var int: Int { if case .int(let v) = self { v } else { 0 } }
    var real: Double { if case .real(let v) = self { v } else { .nan } }
    var bool: Bool { if case .bool(let v) = self { v } else { false } }
}

/// The point a mod is evaluated at.
struct ReferencePoint {
    var b = 0, h = 0, q = 0, kv = 0, queryLength = 1, keyLength = 1
    var score = 0.0
    /// Replacement table contents, by table name, for finite differences.
    var tables: [String: [Double]] = [:]
}

/// Evaluates a mod one element at a time by walking the tree, in Float64: the independent reference the
/// compiled tile programs are checked against.
func reference(_ node: ModNode, at p: ReferencePoint) -> ReferenceValue {
    func r(_ x: ModNode) -> ReferenceValue { reference(x, at: p) }
    switch node.operation {
    case .variable(let v):
        switch v {
        case .b: return .int(p.b)
        case .h: return .int(p.h)
        case .q: return .int(p.q)
        case .kv: return .int(p.kv)
        case .queryLength: return .int(p.queryLength)
        case .keyLength: return .int(p.keyLength)
        case .score: return .real(p.score)
        }
    case .int(let v): return .int(v)
    case .float(let v): return .real(Double(v))
    case .parameter(let parameter):
        switch parameter.value {
        case .int(let v): return .int(v)
        case .float(let v): return .real(Double(v))
        }
    case .unary(let op, let x):
        let v = r(x)
        switch (op, v) {
        case (.not, .bool(let b)): return .bool(!b)
        case (.negate, .int(let i)): return .int(0 &- i)
        case (.negate, .real(let d)): return .real(-d)
        case (.abs, .int(let i)): return .int(i < 0 ? 0 &- i : i)
        case (.abs, .real(let d)): return .real(Swift.abs(d))
        case (.exp, .real(let d)): return .real(Foundation.exp(d))
        case (.log, .real(let d)): return .real(Foundation.log(d))
        case (.tanh, .real(let d)): return .real(Foundation.tanh(d))
        case (.sqrt, .real(let d)): return .real(d.squareRoot())
        case (.float, .int(let i)): return .real(Double(i))
        default: return .bool(false)
        }
    case .binary(let op, let x, let y):
        switch (r(x), r(y)) {
        case (.int(let a), .int(let b)):
            switch op {
            case .add: return .int(a &+ b)
            case .subtract: return .int(a &- b)
            case .multiply: return .int(a &* b)
            case .divide: return .int(b == 0 ? 0 : Int((Double(a) / Double(b)).rounded(.down)))
            case .remainder: return .int(b == 0 ? 0 : a - b * Int((Double(a) / Double(b)).rounded(.down)))
            case .min: return .int(Swift.min(a, b))
            case .max: return .int(Swift.max(a, b))
            default: return .bool(compare(op, a, b))
            }
        case (.real(let a), .real(let b)):
            switch op {
            case .add: return .real(a + b)
            case .subtract: return .real(a - b)
            case .multiply: return .real(a * b)
            case .divide: return .real(a / b)
            case .remainder: return .real(a - (a / b).rounded(.down) * b)
            case .min: return .real(a <= b ? a : b)
            case .max: return .real(a >= b ? a : b)
            default: return .bool(compare(op, a, b))
            }
        case (.bool(let a), .bool(let b)):
            switch op {
            case .and: return .bool(a && b)
            case .or: return .bool(a || b)
            case .equal: return .bool(a == b)
            default: return .bool(a != b)
            }
        default: return .bool(false)
        }
    case .clamp(let x, let low, let high):
        return reference(.binary(.min, .binary(.max, x, low), high), at: p)
    case .select(let c, let x, let y):
        return r(c).bool ? r(x) : r(y)
    case .lookup(let table, let indices):
        var offset = 0
        for (axis, index) in indices.enumerated() {
            offset = offset * table.shape[axis] + Swift.min(Swift.max(r(index).int, 0), table.shape[axis] - 1)
        }
        if let replaced = p.tables[table.name] { return table.elementType == .int ? .int(Int(replaced[offset])) : .real(replaced[offset]) }
        switch table.elements {
        case .int32(let values): return .int(Int(values[offset]))
        case .float(let values): return .real(Double(values[offset]))
        }
    }
}

private func compare<T: Comparable>(_ op: ModBinaryOperator, _ a: T, _ b: T) -> Bool {
    switch op {
    case .equal: a == b
    case .notEqual: a != b
    case .less: a < b
    case .lessEqual: a <= b
    case .greater: a > b
    default: a >= b
    }
}

/// Random well-typed expressions over the variables, small literals, a document-id table and a bias table.
struct RandomExpressions {
    var generator: SplitMix64
    let ids: ModTable
    let bias: ModTable
    /// Whether `score` may appear, and whether to avoid kinks and poles (for finite differences).
    var allowsScore = false
    var smooth = false

    init(seed: UInt64, length: Int, heads: Int) throws {
        generator = SplitMix64(seed: seed)
        ids = try ModTable(name: "doc", shape: [length], elements: .int32((0..<length).map { Int32($0 / 37) }))
        var g = SplitMix64(seed: seed ^ 0xABCD)
        bias = try ModTable(
            name: "bias", shape: [heads, length],
            elements: .float((0..<heads * length).map { _ in Float.random(in: -1...1, using: &g) }))
    }

    private mutating func pick(_ count: Int) -> Int { Int.random(in: 0..<count, using: &generator) }

    /// An index expression that stays inside `0..<length` for `q, kv` in range, so table lookups are valid.
    mutating func index() -> ModNode {
        [ModNode.variable(.q), .variable(.kv), .clamp(.binary(.subtract, .variable(.q), .variable(.kv)), .int(0), .int(ids.shape[0] - 1))][pick(3)]
    }

    mutating func int(depth: Int) -> ModNode {
        if depth == 0 || pick(4) == 0 {
            return [ModNode.variable(.q), .variable(.kv), .variable(.h), .variable(.b), .variable(.keyLength),
                    .int(Int.random(in: -40...90, using: &generator)), .lookup(ids, [index()])][pick(7)]
        }
        let ops: [ModBinaryOperator] = smooth ? [.add, .subtract, .multiply] : [.add, .subtract, .multiply, .min, .max]
        switch pick(smooth ? 2 : 4) {
        case 0: return .binary(ops[pick(ops.count)], int(depth: depth - 1), int(depth: depth - 1))
        case 1: return .negated(int(depth: depth - 1))
        case 2:
            // Divisors kept away from zero: `x % 7 + 8` is in 8...14.
            return .binary([.divide, .remainder][pick(2)], int(depth: depth - 1),
                           .binary(.add, .binary(.remainder, int(depth: depth - 1), .int(7)), .int(8)))
        default: return .select(bool(depth: depth - 1), int(depth: depth - 1), int(depth: depth - 1))
        }
    }

    mutating func float(depth: Int) -> ModNode {
        if depth == 0 || pick(4) == 0 {
            var leaves: [ModNode] = [.unary(.float, int(depth: 0)), .float(Float(Int.random(in: -20...20, using: &generator)) / 8),
                                     .lookup(bias, [.variable(.h), index()])]
            if allowsScore { leaves += [.variable(.score), .variable(.score)] }
            return leaves[pick(leaves.count)]
        }
        let x = float(depth: depth - 1)
        switch pick(smooth ? 4 : 6) {
        case 0: return .binary([.add, .subtract, .multiply][pick(3)], x, float(depth: depth - 1))
        case 1: return .unary(.tanh, x)
        case 2: return .unary(.exp, .unary(.tanh, x))
        // Positive denominators and arguments: 1.5 + tanh(y) is in (0.5, 2.5).
        case 3: return .binary(.divide, x, .binary(.add, .float(1.5), .unary(.tanh, float(depth: depth - 1))))
        case 4: return [ModNode.binary(.min, x, float(depth: depth - 1)), .binary(.max, x, float(depth: depth - 1)), .unary(.abs, x)][pick(3)]
        default: return .select(bool(depth: depth - 1), x, float(depth: depth - 1))
        }
    }

    mutating func bool(depth: Int) -> ModNode {
        if depth == 0 || pick(3) == 0 {
            let ops: [ModBinaryOperator] = [.equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual]
            return pick(4) == 0 && !smooth
                ? .binary(ops[pick(6)], float(depth: 0), float(depth: 0))
                : .binary(ops[pick(6)], int(depth: max(0, depth - 1)), int(depth: max(0, depth - 1)))
        }
        switch pick(3) {
        case 0: return .binary(.and, bool(depth: depth - 1), bool(depth: depth - 1))
        case 1: return .binary(.or, bool(depth: depth - 1), bool(depth: depth - 1))
        default: return .unary(.not, bool(depth: depth - 1))
        }
    }
}
