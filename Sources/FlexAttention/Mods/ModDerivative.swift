/// A derivative under construction. Zero and one are kept apart from expressions so that simplifying them never
/// depends on the value of a literal: two mods with one structural key get derivatives with one structure.
enum ModDerivative: Equatable {
    case zero
    case one
    case node(ModNode)

    var node: ModNode {
        switch self {
        case .zero: .float(0)
        case .one: .float(1)
        case .node(let node): node
        }
    }

    static func + (x: ModDerivative, y: ModDerivative) -> ModDerivative {
        switch (x, y) {
        case (.zero, _): y
        case (_, .zero): x
        default: .node(.binary(.add, x.node, y.node))
        }
    }

    static prefix func - (x: ModDerivative) -> ModDerivative {
        x == .zero ? .zero : .node(.negated(x.node))
    }

    /// `x · factor`.
    static func * (x: ModDerivative, factor: ModNode) -> ModDerivative {
        switch x {
        case .zero: .zero
        case .one: .node(factor)
        case .node(let node): .node(.binary(.multiply, node, factor))
        }
    }

    /// `x / divisor`.
    static func / (x: ModDerivative, divisor: ModNode) -> ModDerivative {
        x == .zero ? .zero : .node(.binary(.divide, x.node, divisor))
    }

    /// `where(condition, x, y)`.
    static func select(_ condition: ModNode, _ x: ModDerivative, _ y: ModDerivative) -> ModDerivative {
        x == y ? x : .node(.select(condition, x.node, y.node))
    }
}

extension ModNode {
    /// ∂self/∂target, where `target` is `score` or a Float table lookup, by the chain rule. Where a function has
    /// a kink (abs, min, max, clamp, the branches of where) it takes the derivative of the branch the value
    /// came from, as autograd does. Each distinct node is differentiated once, operands first, so the
    /// derivative is a DAG linear in the size of this one.
    func derivative(withRespectTo target: ModNode) -> ModDerivative {
        var derivatives: [ObjectIdentifier: ModDerivative] = [:]
        for node in uniqueNodes {
            derivatives[node.identity] = node.derivativeStep(withRespectTo: target) { derivatives[$0.identity] ?? .zero }
        }
        return derivatives[identity] ?? .zero
    }

    /// ∂self/∂target from the derivatives `d` of the operands.
    private func derivativeStep(withRespectTo target: ModNode, _ d: (ModNode) -> ModDerivative) -> ModDerivative {
        if self == target { return .one }
        guard type == .float else { return .zero }
        switch operation {
        case .variable, .int, .float, .parameter, .lookup:
            return .zero
        case .unary(let op, let x):
            switch op {
            case .negate: return -d(x)
            case .abs: return .select(.binary(.greaterEqual, x, .float(0)), d(x), -d(x))
            case .exp: return d(x) * self
            case .log: return d(x) / x
            case .tanh: return d(x) * .binary(.subtract, .float(1), .binary(.multiply, self, self))
            case .sqrt: return d(x) / .binary(.multiply, .float(2), self)
            case .not, .float: return .zero
            }
        case .binary(let op, let x, let y):
            switch op {
            case .add: return d(x) + d(y)
            case .subtract: return d(x) + -d(y)
            case .multiply: return d(x) * y + d(y) * x
            // (x/y)' = (x' − (x/y)·y') / y
            case .divide: return (d(x) + -(d(y) * self)) / y
            // x % y = x − floor(x/y)·y, and floor(x/y) = (x − x % y) / y.
            case .remainder: return d(x) + -(d(y) * .binary(.divide, .binary(.subtract, x, self), y))
            case .min: return .select(.binary(.lessEqual, x, y), d(x), d(y))
            case .max: return .select(.binary(.greaterEqual, x, y), d(x), d(y))
            default: return .zero
            }
        case .clamp(let x, let low, let high):
            // min(max(x, low), high): the branch of max, then the branch of min.
            let raised = ModNode.binary(.max, x, low)
            let dRaised = ModDerivative.select(.binary(.greaterEqual, x, low), d(x), d(low))
            return .select(.binary(.lessEqual, raised, high), dRaised, d(high))
        case .select(let condition, let x, let y):
            return .select(condition, d(x), d(y))
        }
    }

    /// The Float table lookups this expression reads, each once, in first-use order.
    var floatLookups: [ModNode] {
        var found: [ModNode] = []
        var seen: Set<ModNode> = []
        for node in uniqueNodes {
            if case .lookup(let table, _) = node.operation, table.elementType == .float, seen.insert(node).inserted {
                found.append(node)
            }
        }
        return found
    }
}
