/// A score mod `a * tanh(score * b)` with constant `a` and `b` (soft-capping is `cap * tanh(score / cap)`), which
/// the tile kernels evaluate with its derivative in one vector pass instead of running its program.
struct ScaledTanhPattern {
    /// `b`; a division by a constant is a multiplication by its reciprocal (one rounding more, under 1 ulp); a
    /// division by 0 is left to the program.
    var inputScale: Float
    /// `a`.
    var outputScale: Float

    /// Recognises `a * tanh(x)`, `tanh(x) * a` or `tanh(x)`, where `x` is `score`, `score * b`, `b * score` or
    /// `score / b`; `nil` for anything else.
    init?(_ node: ModNode) {
        let (outputScale, tanh): (Float, ModNode)
        switch node.operation {
        case .unary(.tanh, _): (outputScale, tanh) = (1, node)
        case .binary(.multiply, let x, let y):
            if let a = x.constantFloat { (outputScale, tanh) = (a, y) }
            else if let a = y.constantFloat { (outputScale, tanh) = (a, x) }
            else { return nil }
        default: return nil
        }
        guard case .unary(.tanh, let argument) = tanh.operation else { return nil }
        let inputScale: Float?
        switch argument.operation {
        case .variable(.score): inputScale = 1
        case .binary(.multiply, let x, let b) where x.isScore, .binary(.multiply, let b, let x) where x.isScore:
            inputScale = b.constantFloat
        case .binary(.divide, let x, let b) where x.isScore: inputScale = b.constantFloat.map { 1 / $0 }
        default: return nil
        }
        guard let inputScale, inputScale.isFinite else { return nil }
        (self.inputScale, self.outputScale) = (inputScale, outputScale)
    }
}

extension ModNode {
    fileprivate var isScore: Bool {
        if case .variable(.score) = operation { true } else { false }
    }

    /// The value of a Float literal or parameter.
    fileprivate var constantFloat: Float? {
        switch operation {
        case .float(let value): value
        case .parameter(let parameter): if case .float(let value) = parameter.value { value } else { nil }
        default: nil
        }
    }
}
