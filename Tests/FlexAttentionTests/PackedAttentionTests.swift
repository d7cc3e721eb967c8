@testable import FlexAttention
import Testing

/// Attention over packed sequences (cumulative offsets) against each sequence's own Float64 reference: forward,
/// backward, mods that read the sequence index and lengths, table and sink gradients, empty sequences.
@Suite("Packed sequences against the Float64 reference")
struct PackedAttentionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// (queries, keys) of each sequence.
        let lengths: [(Int, Int)]
        var heads = (query: 6, keyValue: 2)
        var dims = (head: 80, value: 80)
        var dtype = DType.float32
        /// Whether Q, K, V and dO are views over `[H, total, D]` memory rather than contiguous `[total, H, D]`.
        var headMajor = false
        var options = AttentionOptions()
        var testDescription: String { name }

        var sequences: PackedSequences {
            get throws {
                try PackedSequences(
                    queryOffsets: lengths.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.0) },
                    keyOffsets: lengths.reduce(into: [0]) { $0.append($0[$0.count - 1] + $1.1) })
            }
        }

        /// Random Q, K, V and dO.
        func inputs(_ rng: inout SeededRandom) throws -> [Tensor] {
            let (totalQ, totalK) = (lengths.map(\.0).reduce(0, +), lengths.map(\.1).reduce(0, +))
            return try [(totalQ, heads.query, dims.head), (totalK, heads.keyValue, dims.head),
                        (totalK, heads.keyValue, dims.value), (totalQ, heads.query, dims.value)].map { rows, h, d in
                headMajor
                    ? try randomTensor([h, rows, d], dtype: dtype, rng: &rng).permuted([1, 0, 2])
                    : try randomTensor([rows, h, d], dtype: dtype, rng: &rng)
            }
        }
    }

    /// Sequences of 1, 37, 70 and 0 queries, none with as many keys as queries.
    static let oddLengths = [(1, 6), (37, 20), (70, 45), (0, 13)]

    static func cases() throws -> [Case] {
        let windows = try IntTable(name: "window", values: [2, 9, 30, 4], shape: [4])
        let window = MaskMod { b, _, q, kv in q - kv < windows[b] }
        let distance = ScoreMod { score, _, _, q, kv in
            score - 0.05 * float(abs(q + ModInt.keyLength - ModInt.queryLength - kv))
        }
        return [
            Case(name: "GQA 6:2, D=80, causal top-left", lengths: oddLengths, options: .init(isCausal: true)),
            // Smaller heads from here on: the debug build's CPU loops dominate the suite's time.
            Case(name: "GQA 4:2, D=32, causal bottom-right", lengths: oddLengths, heads: (4, 2), dims: (32, 32),
                 options: .init(isCausal: true, causalAlignment: .bottomRight)),
            Case(name: "a mask reading b, a score mod reading q_len and kv_len, bottom-right", lengths: oddLengths,
                 heads: (4, 2), dims: (32, 24),
                 options: .init(isCausal: true, causalAlignment: .bottomRight, mask: window, scoreMod: distance)),
            Case(name: "sequences without keys or queries, head-major views, bf16",
                 lengths: [(5, 0), (23, 40), (0, 0), (12, 3)], heads: (4, 1), dims: (24, 40), dtype: .bfloat16,
                 headMajor: true, options: .init(scale: 0.3)),
        ]
    }

    @Test("forward and backward", arguments: try cases())
    func matchesReference(_ c: Case) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let sequences = try c.sequences
        let t = try c.inputs(&rng)
        let (q, k, v, dO) = (t[0], t[1], t[2], t[3])
        let attention = Attention()
        let forward = try attention.forward(
            query: q, key: k, value: v, sequences: sequences, options: c.options, outputDType: .float32)
        let gradients = try attention.backward(
            query: q, key: k, value: v, sequences: sequences, forward: forward, outputGradient: dO,
            gradientDType: .float32)
        #expect(forward.output.shape == [q.shape[0], c.heads.query, c.dims.value])
        #expect(forward.logSumExp.shape == [c.heads.query, q.shape[0]])
        #expect(gradients.query.shape == q.shape && gradients.key.shape == k.shape && gradients.value.shape == v.shape)

        let reference = try PackedReference(query: q, key: k, value: v, sequences: sequences, options: c.options)
        let (o, lse) = reference.forward()
        let (dq, dk, dv) = try reference.backward(outputGradient: dO)
        let (forwardLimit, backwardLimit) = c.dtype == .float32 ? (2e-5, 1e-4) : (tolerance(c.dtype), 4 * tolerance(c.dtype))
        #expect(relativeError(forward.output.floats(), o) < forwardLimit, "O, seed \(seed)")
        #expect(logSumExpError(forward.logSumExp.floats(), lse) < forwardLimit, "LSE, seed \(seed)")
        #expect(relativeError(gradients.query.floats(), dq) < backwardLimit, "dQ, seed \(seed)")
        #expect(relativeError(gradients.key.floats(), dk) < backwardLimit, "dK, seed \(seed)")
        #expect(relativeError(gradients.value.floats(), dv) < backwardLimit, "dV, seed \(seed)")
        // Rows without keys, and keys without queries: exactly 0 and −∞, not merely close.
        for s in 0..<sequences.count where sequences.keyRange(s).isEmpty {
            for row in sequences.queryRange(s) {
                #expect(try forward.output.packedRows(row..<row + 1).floats().allSatisfy { $0 == 0 })
                #expect(try forward.logSumExp.packedColumns(row..<row + 1).floats().allSatisfy { $0 == -.infinity })
                #expect(try gradients.query.packedRows(row..<row + 1).floats().allSatisfy { $0 == 0 })
            }
        }
        for s in 0..<sequences.count where sequences.queryRange(s).isEmpty {
            let keys = sequences.keyRange(s)
            #expect(try gradients.key.packedRows(keys).floats().allSatisfy { $0 == 0 })
            #expect(try gradients.value.packedRows(keys).floats().allSatisfy { $0 == 0 })
        }
    }

    @Test("Float tables indexed by b and h: gradients summed over sequences, the same bits on every run")
    func tableGradients() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let bias = try FloatTable(name: "bias", values: (0..<10).map { _ in Float.random(in: -1...1, using: &rng) },
                                  shape: [2, 5])
        let slope = try FloatTable(name: "slope", values: [0.5, -1, 2, 1.5], shape: [4])
        let options = AttentionOptions(
            isCausal: true, causalAlignment: .bottomRight,
            scoreMod: ScoreMod { score, b, h, q, kv in score + bias[h, clamp(q - kv, -2, 2) + 2] * slope[b] })
        let c = Case(name: "", lengths: [(9, 14), (0, 5), (20, 20), (7, 0)], heads: (2, 1), dims: (16, 12),
                     options: options)
        let sequences = try c.sequences
        let t = try c.inputs(&rng)
        let attention = Attention()
        let forward = try attention.forward(query: t[0], key: t[1], value: t[2], sequences: sequences, options: options)
        let runs = try (0..<2).map { _ in
            try attention.backward(
                query: t[0], key: t[1], value: t[2], sequences: sequences, forward: forward, outputGradient: t[3])
        }
        for table in [bias, slope] {
            let gradient = try #require(runs[0][table: table]).floats()
            #expect(runs[1][table: table]?.floats().map(\.bitPattern) == gradient.map(\.bitPattern))
            let values = table.values.map(Double.init)
            var expected: [Double] = []
            for index in values.indices {
                func loss(_ delta: Double) throws -> Double {
                    var changed = values
                    changed[index] += delta
                    return try PackedReference(
                        query: t[0], key: t[1], value: t[2], sequences: sequences, options: options,
                        tables: [table.table.name: changed]
                    ).loss(outputGradient: t[3])
                }
                expected.append((try loss(1e-4) - loss(-1e-4)) / 2e-4)
            }
            #expect(relativeError(gradient, expected) < 1e-4, "\(table.table.name), seed \(seed)")
            // Slope 1 reads no row of sequence 1 (no queries), slope 3 none of sequence 3 (no keys).
            if table.table.name == "slope" { #expect(gradient[1] == 0 && gradient[3] == 0) }
        }
    }

    @Test("sinks: forward, backward and the sink gradient summed over sequences, rows without keys included")
    func sinks() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let sinks: [Float] = [0.5, -1, 2, -.infinity]
        let options = AttentionOptions(
            isCausal: true, causalAlignment: .bottomRight, scoreMod: .softCap(4), sinks: sinks)
        let c = Case(name: "", lengths: [(9, 14), (6, 0), (0, 3), (20, 11)], heads: (4, 2), dims: (16, 8),
                     options: options)
        let sequences = try c.sequences
        let t = try c.inputs(&rng)
        let attention = Attention()
        let forward = try attention.forward(query: t[0], key: t[1], value: t[2], sequences: sequences, options: options)
        let gradients = try attention.backward(
            query: t[0], key: t[1], value: t[2], sequences: sequences, forward: forward, outputGradient: t[3])
        let reference = try PackedReference(query: t[0], key: t[1], value: t[2], sequences: sequences, options: options)
        let (o, lse) = reference.forward()
        let (dq, dk, dv) = try reference.backward(outputGradient: t[3])
        #expect(relativeError(forward.output.floats(), o) < 2e-5, "O, seed \(seed)")
        #expect(logSumExpError(forward.logSumExp.floats(), lse) < 2e-5, "LSE, seed \(seed)")
        #expect(relativeError(gradients.query.floats(), dq) < 1e-4, "dQ, seed \(seed)")
        #expect(relativeError(gradients.key.floats(), dk) < 1e-4, "dK, seed \(seed)")
        #expect(relativeError(gradients.value.floats(), dv) < 1e-4, "dV, seed \(seed)")
        let sinkGradient = try #require(gradients.sinkGradient)
        #expect(relativeError(sinkGradient.floats(), try reference.sinkGradient(outputGradient: t[3])) < 1e-4,
                "sink gradient, seed \(seed)")
        #expect(sinkGradient.floats()[3] == 0, "a head without a sink has no sink gradient")
        // Sequence 1 has no keys: its rows hold the sink alone, LSE = sink, O = 0.
        let lseRows = try forward.logSumExp.packedColumns(sequences.queryRange(1)).floats()
        #expect(lseRows == (0..<4).flatMap { h in [Float](repeating: sinks[h], count: 6) })
    }

    @Test("a NaN key reaches only the rows of its own sequence that keep it")
    func nonFiniteStaysInItsSequence() throws {
        var rng = SeededRandom(seed: freshSeed())
        let c = Case(name: "", lengths: [(10, 10), (10, 10), (10, 10)], heads: (2, 1), dims: (8, 8),
                     options: .init(isCausal: true))
        let sequences = try c.sequences
        let t = try c.inputs(&rng)
        let poisoned = try Tensor(t[1].floats(), shape: t[1].shape)
        try poisoned.packedRows(13..<14).copy(from: Tensor([Float](repeating: .nan, count: 8), shape: [1, 1, 1, 8]))
        let attention = Attention()
        let clean = try attention.forward(query: t[0], key: t[1], value: t[2], sequences: sequences, options: c.options)
        let dirty = try attention.forward(query: t[0], key: poisoned, value: t[2], sequences: sequences, options: c.options)
        for row in 0..<30 {
            let (got, want) = try (dirty.output.packedRows(row..<row + 1).floats(), clean.output.packedRows(row..<row + 1).floats())
            if (13..<20).contains(row) {  // sequence 1's rows from its position 3 keep key 3
                #expect(got.allSatisfy { $0.isNaN }, "row \(row)")
            } else {
                #expect(got == want, "row \(row)")
            }
        }
    }
}

extension FloatTable {
    /// The captured values.
    fileprivate var values: [Float] {
        if case .float(let values) = table.elements { values } else { [] }
    }
}
