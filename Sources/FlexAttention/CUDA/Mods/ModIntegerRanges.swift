/// Bounds on the Int subexpressions of a lifted mod (``CUDAModFunction``'s) that hold for every input a CUDA kernel
/// passes: indices and lengths are below 2³¹ (the launchers count rows and blocks in 32-bit ints), Int tables hold
/// Int32, and argument slots (`.int` after lifting) are unknown. An Int known to fit in 32 bits converts to Float
/// with a 32-bit conversion, where the 64-bit one runs at a quarter of its rate, as slowly as `exp2` itself.
struct ModIntegerRanges {
    /// Each node's bounds, or nil when unknown (or when they overflow 64 bits); every node is bounded once.
    private var ranges: [ObjectIdentifier: ClosedRange<Int>?] = [:]

    /// Whether the Int value of `node` fits in Int32 for every input.
    mutating func fitsInt32(_ node: ModNode) -> Bool {
        for next in node.uniqueNodes(stoppingAt: { ranges[$0.identity] != nil }) {
            ranges[next.identity] = .some(range(of: next))
        }
        guard case .some(.some(let range)) = ranges[node.identity] else { return false }
        return range.lowerBound >= Int(Int32.min) && range.upperBound <= Int(Int32.max)
    }

    /// The bounds of `node`, whose operands are bounded already.
    private func range(of node: ModNode) -> ClosedRange<Int>? {
        func operand(_ x: ModNode) -> ClosedRange<Int>? { ranges[x.identity] ?? nil }
        switch node.operation {
        case .variable(let variable): return variable.type == .int ? 0...Int(Int32.max) : nil
        case .lookup(let table, _): return table.elementType == .int ? Int(Int32.min)...Int(Int32.max) : nil
        case .unary(.negate, let x):
            return operand(x).flatMap { Self.span([0 &- $0.upperBound, 0 &- $0.lowerBound], exact: $0.lowerBound != .min) }
        case .unary(.abs, let x):
            guard let x = operand(x), x.lowerBound != .min else { return nil }
            let (low, high) = (Swift.abs(x.lowerBound), Swift.abs(x.upperBound))
            return (x.contains(0) ? 0 : Swift.min(low, high))...Swift.max(low, high)
        case .binary(let op, let x, let y):
            guard let x = operand(x), let y = operand(y) else { return nil }
            return Self.combine(op, x, y)
        case .clamp(let x, let low, let high):
            guard let x = operand(x), let low = operand(low), let high = operand(high),
                  let raised = Self.combine(.max, x, low) else { return nil }
            return Self.combine(.min, raised, high)
        case .select(_, let x, let y):
            guard let x = operand(x), let y = operand(y) else { return nil }
            return Swift.min(x.lowerBound, y.lowerBound)...Swift.max(x.upperBound, y.upperBound)
        default: return nil
        }
    }

    private static func combine(_ op: ModBinaryOperator, _ x: ClosedRange<Int>, _ y: ClosedRange<Int>) -> ClosedRange<Int>? {
        func corners(_ f: (Int, Int) -> (partialValue: Int, overflow: Bool)) -> ClosedRange<Int>? {
            let results = [(x.lowerBound, y.lowerBound), (x.lowerBound, y.upperBound), (x.upperBound, y.lowerBound),
                           (x.upperBound, y.upperBound)].map { f($0, $1) }
            return span(results.map(\.partialValue), exact: !results.contains { $0.overflow })
        }
        // The magnitude a quotient (floored; 0 or −x for divisors 0 and −1) and a remainder (below the divisor's) keep.
        func symmetric(_ bound: Int) -> ClosedRange<Int> { -bound...bound }
        switch op {
        case .add: return corners { $0.addingReportingOverflow($1) }
        case .subtract: return corners { $0.subtractingReportingOverflow($1) }
        case .multiply: return corners { $0.multipliedReportingOverflow(by: $1) }
        case .divide: return x.lowerBound == .min ? nil : symmetric(Swift.max(Swift.abs(x.lowerBound), x.upperBound))
        case .remainder: return y.lowerBound == .min ? nil : symmetric(Swift.max(Swift.abs(y.lowerBound), Swift.abs(y.upperBound), 1) - 1)
        case .min: return Swift.min(x.lowerBound, y.lowerBound)...Swift.min(x.upperBound, y.upperBound)
        case .max: return Swift.max(x.lowerBound, y.lowerBound)...Swift.max(x.upperBound, y.upperBound)
        default: return nil
        }
    }

    private static func span(_ values: [Int], exact: Bool) -> ClosedRange<Int>? {
        guard exact, let low = values.min(), let high = values.max() else { return nil }
        return low...high
    }
}
