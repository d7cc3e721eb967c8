/// Walks over the DAG without recursion, each shared node once.
extension ModNode {
    /// Every distinct node (by identity) below and including this one, operands before the nodes that use them,
    /// in the order of a depth-first, left-to-right walk: the order every analysis and ``ModArguments`` use.
    var uniqueNodes: [ModNode] { uniqueNodes(stoppingAt: { _ in false }) }

    /// ``uniqueNodes`` without the nodes `isKnown` accepts and those below them: what a memoised analysis has
    /// left to visit.
    func uniqueNodes(stoppingAt isKnown: (ModNode) -> Bool) -> [ModNode] {
        var order: [ModNode] = []
        var visited: Set<ObjectIdentifier> = []
        var pending: [(node: ModNode, operandsDone: Bool)] = [(self, false)]
        while let (node, operandsDone) = pending.popLast() {
            if operandsDone {
                order.append(node)
                continue
            }
            guard !isKnown(node), visited.insert(node.identity).inserted else { continue }
            pending.append((node, true))
            for child in node.children.reversed() where !visited.contains(child.identity) {
                pending.append((child, false))
            }
        }
        return order
    }

    /// How many times each node of `nodes` (an expression's ``uniqueNodes``) is an operand of the others.
    static func useCounts(_ nodes: [ModNode]) -> [ObjectIdentifier: Int] {
        var counts: [ObjectIdentifier: Int] = [:]
        for node in nodes {
            for child in node.children { counts[child.identity, default: 0] += 1 }
        }
        return counts
    }

    /// The expression rebuilt bottom-up: `transform` gets each distinct node with its operands already rebuilt
    /// and returns its replacement; shared nodes stay shared.
    func rebuilt(_ transform: (_ node: ModNode, _ operands: [ModNode]) throws -> ModNode) rethrows -> ModNode {
        var results: [ObjectIdentifier: ModNode] = [:]
        for node in uniqueNodes {
            results[node.identity] = try transform(node, node.children.map { results[$0.identity] ?? $0 })
        }
        return results[identity] ?? self
    }

    /// The node with its operands replaced, or itself when they are the same nodes.
    func withChildren(_ operands: [ModNode]) -> ModNode {
        let children = self.children
        if zip(children, operands).allSatisfy({ $0.identity == $1.identity }) { return self }
        return ModNode(operation.replacingChildren(operands))
    }
}
