@testable import FlexAttention
import Testing

/// Non-finite values that arise inside attention from finite inputs — a score mod undefined where the mask
/// removes the score, scores or products that overflow Float32 — and the table gradients of poisoned rows.
@Suite("Non-finite values from mods, overflow and tables")
struct NonFiniteEdgeTests {
    /// `values` with the row `row` (of `columns`) multiplied by `factor`.
    static func scaling(_ values: [Float], row: Int, columns: Int, by factor: Float) -> [Float] {
        var result = values
        for c in row * columns..<(row + 1) * columns { result[c] *= factor }
        return result
    }

    static func random(_ count: Int, _ range: ClosedRange<Float> = -1...1, _ rng: inout SeededRandom) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &rng) }
    }

    @Test("sqrt(score), undefined (and its slope) at every masked score, leaves no trace")
    func scoreModUndefinedAtMaskedScores() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (sq, skv, d, length) = (70, 100, 16, 75)
        // Positive Q and kept K rows give positive kept scores; the K rows past `length` are negated, so every
        // masked score is negative.
        let keys = Self.random(skv * d, 0.2...1, &rng).enumerated()
            .map { $0.offset / d < length ? $0.element : -$0.element }
        let q = try Tensor(Self.random(sq * d, 0.2...1, &rng), shape: [1, 1, sq, d])
        let k = try Tensor(keys, shape: [1, 1, skv, d])
        let v = try Tensor(Self.random(skv * d, -1...1, &rng), shape: [1, 1, skv, d])
        let dO = try Tensor(Self.random(sq * d, -1...1, &rng), shape: [1, 1, sq, d])
        let options = AttentionOptions(
            mask: MaskMod { _, _, _, kv in kv < ModInt(length) }, scoreMod: ScoreMod { s, _, _, _, _ in sqrt(s) })
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(
            query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options)
        let reference = ReferenceAttention(
            query: q, key: k, value: v, score: { s, _, _, _, _ in s.squareRoot() }, keep: { _, _, _, j in j < length })
        let (o, lse) = reference.forward()
        let gradients = reference.backward(outputGradient: dO.floats().map { Double($0) })
        #expect(relativeError(forward.output.floats(), o) < 2e-5, "O, seed \(seed)")
        #expect(logSumExpError(forward.logSumExp.floats(), lse) < 2e-5, "LSE, seed \(seed)")
        #expect(relativeError(grads.query.floats(), gradients.dq) < 1e-4, "dQ, seed \(seed)")
        #expect(relativeError(grads.key.floats(), gradients.dk) < 1e-4, "dK, seed \(seed)")
        #expect(relativeError(grads.value.floats(), gradients.dv) < 1e-4, "dV, seed \(seed)")
    }

    @Test("every Float table's gradient is NaN once a row is poisoned, finite otherwise")
    func tableGradientsOfPoisonedRows() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (hq, s, d) = (2, 40, 16)
        let mod = try ScoreMod.relativePositionBias(Self.random(hq * 9, -1...1, &rng), heads: hq, maxDistance: 4)
        let options = AttentionOptions(isCausal: true, scoreMod: mod)
        let q = try randomTensor([1, hq, s, d], rng: &rng)
        let k = try randomTensor([1, 1, s, d], rng: &rng)
        let v = try randomTensor([1, 1, s, d], rng: &rng)
        let upstream = Self.random(hq * s * d, -1...1, &rng)
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        for poisoned in [false, true] {
            var values = upstream
            if poisoned { values[(s + 7) * d] = .nan }  // head 1, row 7
            let grads = try attention.backward(
                query: q, key: k, value: v, forward: forward, outputGradient: Tensor(values, shape: [1, hq, s, d]),
                options: options)
            let table = try #require(grads.tableGradients.values.first).floats()
            #expect(table.allSatisfy { poisoned ? $0.isNaN : $0.isFinite }, "poisoned \(poisoned), seed \(seed)")
            let nanRows = Set(grads.query.floats().indices.filter { grads.query.floats()[$0].isNaN }.map { $0 / d })
            #expect(nanRows == (poisoned ? [s + 7] : []), "seed \(seed)")
        }
    }

    /// Elements of 1e30 in one query row and one key row: their score overflows Float32 (the Float64 reference is
    /// finite). Where the mask removes that score nothing may change; where it keeps it only that row may.
    @Test("scores that overflow Float32 reach only the row that keeps them", arguments: [false, true])
    func overflowingScores(kept: Bool) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (s, d, hugeQuery) = (100, 32, 30)
        let hugeKey = kept ? 20 : 60
        let shape = [1, 1, s, d]
        let q = try Tensor(Self.scaling(Self.random(s * d, -1...1, &rng), row: hugeQuery, columns: d, by: 1e30), shape: shape)
        let k = try Tensor(Self.scaling(Self.random(s * d, -1...1, &rng), row: hugeKey, columns: d, by: 1e30), shape: shape)
        let v = try Tensor(Self.random(s * d, -1...1, &rng), shape: [1, 1, s, d])
        let forward = try Attention().forward(query: q, key: k, value: v, options: .init(isCausal: true))
        let (o, lse) = ReferenceAttention(query: q, key: k, value: v, keep: { _, _, i, j in i >= j }).forward()
        let output = forward.output.floats()
        let logSumExp = forward.logSumExp.floats()
        let (queries, keys) = (q.floats(), k.floats())
        for row in 0..<s where !(kept && row == hugeQuery) {
            let error = relativeError(Array(output[row * d..<(row + 1) * d]), Array(o[row * d..<(row + 1) * d]))
            #expect(error < 2e-5, "O row \(row), seed \(seed)")
            // A Float32 score's rounding error scales with Σ|q_i·k_i|, not with the score, which a row or key of
            // 1e30 may make far smaller by cancellation: allow D·ε of the largest such sum the row keeps.
            var magnitude = 0.0
            for j in 0...row {
                var sum = 0.0
                for i in 0..<d { sum += abs(Double(queries[row * d + i]) * Double(keys[j * d + i])) }
                magnitude = max(magnitude, sum)
            }
            let scoreError = Double(d) * 1.2e-7 * magnitude / Double(d).squareRoot()
            let tolerance = max(2e-5 * max(1, abs(lse[row])), scoreError)
            #expect(abs(Double(logSumExp[row]) - lse[row]) <= tolerance, "LSE row \(row), seed \(seed)")
        }
    }

    /// dP = dO·v overflows at a masked score (a value row of 1e30, an output-gradient row of 1e10): P = 0 there
    /// and the score's gradient must stay 0, not 0 × ∞.
    @Test("a gradient product that overflows at a masked score does not spread")
    func overflowAtMaskedScoreInBackward() throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (s, d, hugeValue, hugeGradient) = (100, 32, 60, 30)
        let q = try Tensor(Self.random(s * d, -1...1, &rng), shape: [1, 1, s, d])
        let k = try Tensor(Self.random(s * d, -1...1, &rng), shape: [1, 1, s, d])
        let v = try Tensor(
            Self.scaling(Self.random(s * d, -1...1, &rng), row: hugeValue, columns: d, by: 1e30), shape: [1, 1, s, d])
        let dO = try Tensor(
            Self.scaling(Self.random(s * d, -1...1, &rng), row: hugeGradient, columns: d, by: 1e10), shape: [1, 1, s, d])
        let options = AttentionOptions(isCausal: true)
        let attention = Attention()
        let forward = try attention.forward(query: q, key: k, value: v, options: options)
        let grads = try attention.backward(
            query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options)
        let gradients = ReferenceAttention(query: q, key: k, value: v, keep: { _, _, i, j in i >= j })
            .backward(outputGradient: dO.floats().map { Double($0) })
        #expect(relativeError(grads.query.floats(), gradients.dq) < 1e-4, "dQ, seed \(seed)")
        #expect(relativeError(grads.key.floats(), gradients.dk) < 1e-4, "dK, seed \(seed)")
        #expect(relativeError(grads.value.floats(), gradients.dv) < 1e-4, "dV, seed \(seed)")
    }
}
