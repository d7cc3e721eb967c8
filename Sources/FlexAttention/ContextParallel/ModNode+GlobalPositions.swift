/// Mods written for the whole sequence, run on a piece of it: context parallelism computes attention of a chunk of
/// queries to a run of keys as a problem of its own, whose `q` and `kv` start at 0, yet its mods must see global
/// positions and lengths.
///
/// `q` becomes `q + q0`, `kv` becomes `kv + kv0`, `h` becomes `h + h0` (a group of heads run alone) and `q_len`,
/// `kv_len` the global lengths. The offsets are Int literals, lifted into the arguments like any literal
/// (``ModArguments``), so every piece shares one compiled kernel.
struct GlobalPositions: Hashable, Sendable {
    var query: Int
    var key: Int
    var head: Int
    var queryLength: Int
    var keyLength: Int
}

extension ModNode {
    /// This expression with positions and lengths mapped as `positions` says.
    func atGlobalPositions(_ positions: GlobalPositions) -> ModNode {
        func shifted(_ variable: ModVariable, by offset: Int) -> ModNode {
            ModNode(.binary(.add, ModNode(.variable(variable)), ModNode(.int(offset))))
        }
        let replacements: [ModVariable: ModNode] = [
            .q: shifted(.q, by: positions.query), .kv: shifted(.kv, by: positions.key),
            .h: shifted(.h, by: positions.head), .queryLength: ModNode(.int(positions.queryLength)),
            .keyLength: ModNode(.int(positions.keyLength)),
        ]
        return rebuilt { node, operands in
            if case .variable(let variable) = node.operation, let replacement = replacements[variable] { return replacement }
            return node.withChildren(operands)
        }
    }
}

extension MaskMod {
    func atGlobalPositions(_ positions: GlobalPositions) -> MaskMod {
        MaskMod(node: expression.node.atGlobalPositions(positions))
    }
}

extension ScoreMod {
    /// The score mod at global positions; its tables (and the names their gradients go by) are unchanged.
    func atGlobalPositions(_ positions: GlobalPositions) -> ScoreMod {
        ScoreMod(node: expression.node.atGlobalPositions(positions))
    }
}
