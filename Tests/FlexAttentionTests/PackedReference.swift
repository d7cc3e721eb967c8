@testable import FlexAttention

/// The packed-sequence ground truth: each sequence's own dense Float64 ``ReferenceAttention`` on its rows, with the
/// mods evaluated element by element at `b` = the sequence's index and its own lengths, assembled into the packed
/// layouts (O `[totalQ, Hq, Dv]`, LSE `[Hq, totalQ]`, dQ/dK/dV like Q/K/V).
struct PackedReference {
    let sequences: PackedSequences
    let references: [ReferenceAttention]
    let queryHeads: Int, keyValueHeads: Int, headDim: Int, valueDim: Int

    /// - Parameter tables: replacement table contents by name (for finite differences).
    init(query: Tensor, key: Tensor, value: Tensor, sequences: PackedSequences, options: AttentionOptions,
         tables: [String: [Double]] = [:]) throws {
        self.sequences = sequences
        (queryHeads, keyValueHeads, headDim, valueDim) = (query.shape[1], key.shape[1], query.shape[2], value.shape[2])
        let maskNode = options.mask?.expression.node
        let scoreNode = options.scoreMod?.expression.node
        let (isCausal, bottomRight) = (options.isCausal, options.causalAlignment == .bottomRight)
        references = try (0..<sequences.count).map { s in
            let (rows, keys) = (sequences.queryRange(s), sequences.keyRange(s))
            let (sq, skv) = (rows.count, keys.count)
            // The reference runs each sequence as batch 1: the closures ignore its b and use the sequence's index.
            var reference = ReferenceAttention(
                query: try query.packedRows(rows), key: try key.packedRows(keys), value: try value.packedRows(keys),
                scale: options.scale.map(Double.init),
                score: scoreNode.map { node in
                    { score, _, h, i, j in
                        FlexAttentionTests.reference(node, at: ReferencePoint(
                            b: s, h: h, q: i, kv: j, queryLength: sq, keyLength: skv, score: score, tables: tables)).real
                    }
                },
                keep: { _, h, i, j in
                    (!isCausal || (bottomRight ? i + skv - sq >= j : i >= j)) && (maskNode.map {
                        FlexAttentionTests.reference($0, at: ReferencePoint(
                            b: s, h: h, q: i, kv: j, queryLength: sq, keyLength: skv)).bool
                    } ?? true)
                })
            reference.sinks = options.sinks?.map(Double.init)
            return reference
        }
    }

    private var totalQueries: Int { sequences.queryRange(sequences.count - 1).upperBound }
    private var totalKeys: Int { sequences.keyRange(sequences.count - 1).upperBound }

    /// O `[totalQ, Hq, Dv]` and LSE `[Hq, totalQ]`, row-major.
    func forward() -> (o: [Double], lse: [Double]) {
        var o = [Double](repeating: 0, count: totalQueries * queryHeads * valueDim)
        var lse = [Double](repeating: 0, count: queryHeads * totalQueries)
        for (s, reference) in references.enumerated() {
            let rows = sequences.queryRange(s)
            let (so, sl) = reference.forward()
            for h in 0..<queryHeads {
                for i in 0..<rows.count {
                    lse[h * totalQueries + rows.lowerBound + i] = sl[h * rows.count + i]
                    for c in 0..<valueDim {
                        o[((rows.lowerBound + i) * queryHeads + h) * valueDim + c] = so[(h * rows.count + i) * valueDim + c]
                    }
                }
            }
        }
        return (o, lse)
    }

    /// dQ, dK, dV in the packed layouts of Q, K, V, for the packed `dO`.
    func backward(outputGradient: Tensor) throws -> (dq: [Double], dk: [Double], dv: [Double]) {
        var dq = [Double](repeating: 0, count: totalQueries * queryHeads * headDim)
        var dk = [Double](repeating: 0, count: totalKeys * keyValueHeads * headDim)
        var dv = [Double](repeating: 0, count: totalKeys * keyValueHeads * valueDim)
        func scatter(_ part: [Double], into packed: inout [Double], rows: Range<Int>, heads: Int, width: Int) {
            for h in 0..<heads {
                for i in 0..<rows.count {
                    for c in 0..<width {
                        packed[((rows.lowerBound + i) * heads + h) * width + c] = part[(h * rows.count + i) * width + c]
                    }
                }
            }
        }
        for (s, reference) in references.enumerated() {
            let (rows, keys) = (sequences.queryRange(s), sequences.keyRange(s))
            let part = reference.backward(outputGradient: try sequenceGradient(outputGradient, s))
            scatter(part.dq, into: &dq, rows: rows, heads: queryHeads, width: headDim)
            scatter(part.dk, into: &dk, rows: keys, heads: keyValueHeads, width: headDim)
            scatter(part.dv, into: &dv, rows: keys, heads: keyValueHeads, width: valueDim)
        }
        return (dq, dk, dv)
    }

    /// ∂(Σ O ∘ dO)/∂sink, summed over the sequences.
    func sinkGradient(outputGradient: Tensor) throws -> [Double] {
        var gradient = [Double](repeating: 0, count: queryHeads)
        for (s, reference) in references.enumerated() {
            for (h, part) in reference.sinkGradient(outputGradient: try sequenceGradient(outputGradient, s)).enumerated() {
                gradient[h] += part
            }
        }
        return gradient
    }

    /// Σ O ∘ dO over every sequence.
    func loss(outputGradient: Tensor) throws -> Double {
        try references.indices.reduce(0) {
            $0 + references[$1].loss(outputGradient: try sequenceGradient(outputGradient, $1))
        }
    }

    /// Sequence `s`'s rows of the packed `dO`, as `[1, Hq, sq, Dv]` row-major Doubles.
    private func sequenceGradient(_ outputGradient: Tensor, _ s: Int) throws -> [Double] {
        try outputGradient.packedRows(sequences.queryRange(s)).floats().map(Double.init)
    }
}
