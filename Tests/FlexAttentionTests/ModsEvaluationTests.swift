import Testing
@testable import FlexAttention

@Suite struct ModsEvaluationTests {
    static let (queries, keys, heads) = (21, 19, 2)

    @Test("random masks: tile program, print/parse and reference agree", arguments: 0..<40)
    func randomMask(_ seed: Int) throws {
        var random = try RandomExpressions(seed: UInt64(seed), length: 32, heads: Self.heads)
        let mask = try MaskMod(ModExpression(random.bool(depth: 3)))
        #expect(try MaskMod(parsing: mask.description, tables: [random.ids, random.bias]) == mask)
        let grid = TileGrid(batch: 1, head: 1, queries: Self.queries, keys: Self.keys)
        let actual = try grid.kept(mask)
        let expected = (0..<Self.keys).flatMap { kv in
            (0..<Self.queries).map { q in
                reference(mask.expression.node, at: ReferencePoint(b: 1, h: 1, q: q, kv: kv, queryLength: Self.queries, keyLength: Self.keys)).bool
            }
        }
        #expect(actual == expected, "\(mask): \(firstMismatch(actual, expected, queries: Self.queries) ?? "")")
    }

    @Test("random score mods: values and ∂/∂score against the reference and finite differences", arguments: 0..<40)
    func randomScoreMod(_ seed: Int) throws {
        var random = try RandomExpressions(seed: UInt64(seed) + 1000, length: 32, heads: Self.heads)
        random.allowsScore = true
        random.smooth = true
        let mod = try ScoreMod(ModExpression(.binary(.add, .variable(.score), random.float(depth: 3))))
        #expect(try ScoreMod(parsing: mod.description, tables: [random.ids, random.bias]) == mod)
        let evaluator = try ScoreModTileEvaluator(mod, queryLength: Self.queries, keyLength: Self.keys)
        let grid = TileGrid(batch: 0, head: 1, queries: Self.queries, keys: Self.keys)
        let initial: (Int, Int) -> Float = { q, kv in Float((q * 5 + kv * 3) % 17) * 0.25 - 2 }
        var derivative = [Float](repeating: 0, count: Self.queries * Self.keys)
        let values = derivative.withUnsafeMutableBufferPointer { d in
            grid.run(initial: initial) { evaluator.modify($0, derivative: d.baseAddress) }
        }
        for kv in 0..<Self.keys {
            for q in 0..<Self.queries {
                var point = ReferencePoint(b: 0, h: 1, q: q, kv: kv, queryLength: Self.queries, keyLength: Self.keys)
                point.score = Double(initial(q, kv))
                let expected = reference(mod.expression.node, at: point).real
                let i = kv * Self.queries + q
                #expect(abs(Double(values[i]) - expected) <= 1e-4 * max(1, abs(expected)), "\(mod) at q \(q) kv \(kv)")
                let step = 1e-4
                point.score += step
                let above = reference(mod.expression.node, at: point).real
                point.score -= 2 * step
                let below = reference(mod.expression.node, at: point).real
                let slope = (above - below) / (2 * step)
                #expect(abs(Double(derivative[i]) - slope) <= 1e-3 * max(1, abs(slope)), "∂(\(mod)) at q \(q) kv \(kv)")
            }
        }
    }

    @Test("Float table gradients against finite differences", arguments: 0..<12)
    func tableGradient(_ seed: Int) throws {
        var random = try RandomExpressions(seed: UInt64(seed) + 2000, length: 32, heads: Self.heads)
        random.allowsScore = true
        random.smooth = true
        let bias = random.bias
        let lookup = ModNode.lookup(bias, [.variable(.h), .binary(.remainder, .binary(.add, .variable(.q), .variable(.kv)), .int(32))])
        let mod = try ScoreMod(ModExpression(.binary(.add, .binary(.multiply, .variable(.score), lookup), .unary(.tanh, random.float(depth: 2)))))
        let evaluator = try ScoreModTileEvaluator(mod, queryLength: Self.queries, keyLength: Self.keys)
        #expect(evaluator.gradientTables == [bias])
        let upstream: (Int, Int) -> Double = { q, kv in (q + kv) % 4 == 0 ? 0 : Double((q * 3 + kv) % 7) - 3 }
        let initial: (Int, Int) -> Float = { q, kv in Float((q + 2 * kv) % 9) * 0.5 - 2 }
        var gradient = [Float](repeating: 0, count: bias.count)
        let grid = TileGrid(batch: 0, head: 1, queries: Self.queries, keys: Self.keys)
        let upstreamTile = (0..<Self.keys).flatMap { kv in (0..<Self.queries).map { Float(upstream($0, kv)) } }
        _ = gradient.withUnsafeMutableBufferPointer { g in
            upstreamTile.withUnsafeBufferPointer { u in
                grid.run(initial: initial) {
                    evaluator.accumulateTableGradients(scores: $0, outputGradient: u.baseAddress!, into: [g.baseAddress!])
                }
            }
        }
        guard case .float(let contents) = bias.elements else { return }
        // L = Σ upstream · score′; its derivative by each table entry, by central differences.
        func loss(_ table: [Double]) -> Double {
            var total = 0.0
            for kv in 0..<Self.keys {
                for q in 0..<Self.queries where upstream(q, kv) != 0 {
                    var point = ReferencePoint(b: 0, h: 1, q: q, kv: kv, queryLength: Self.queries, keyLength: Self.keys)
                    point.score = Double(initial(q, kv))
                    point.tables = ["bias": table]
                    total += upstream(q, kv) * reference(mod.expression.node, at: point).real
                }
            }
            return total
        }
        let base = contents.map(Double.init)
        for entry in [0, 31, 32, 33, 45, 63] {
            var (above, below) = (base, base)
            above[entry] += 1e-3
            below[entry] -= 1e-3
            let expected = (loss(above) - loss(below)) / 2e-3
            #expect(abs(Double(gradient[entry]) - expected) <= 1e-3 * max(1, abs(expected)), "\(mod) entry \(entry)")
        }
    }

    @Test func scoreModsNest() throws {
        let composed = ScoreMod.softCap(10).then(try .alibi(heads: 2))
        #expect(composed.description == "10.0 * tanh(score / 10.0) + alibi_slope[h] * float(kv - q)")
        #expect(composed.expression.structuralKey == ScoreMod.softCap(3).then(try .alibi(heads: 4)).expression.structuralKey)
    }
}
