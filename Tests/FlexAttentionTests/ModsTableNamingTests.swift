import Testing
@testable import FlexAttention

/// Built-in mods' tables take the caller's names, Swift arrays become tables without a hand-made name, and a
/// table's gradient is found by the table itself.
@Suite("Table names")
struct ModsTableNamingTests {
    @Test("two document masks of different ids combine once their tables are named apart")
    func namedBuiltinTables() throws {
        var generator = SeededRandom(seed: freshSeed())
        let ids = (0..<90).map { $0 / 30 }
        let other = (0..<90).map { $0 / 45 }
        let clash = try MaskMod.document(ids: ids) && MaskMod.documentCausal(ids: other)
        #expect(throws: ModError.self) { try clash.validate() }
        let named = try MaskMod.document(ids: ids, tableName: "segments") && MaskMod.documentCausal(ids: other, tableName: "turns")
        let t = try (0..<3).map { _ in try randomTensor([1, 2, 90, 16], rng: &generator) }
        let got = try Attention().forward(query: t[0], key: t[1], value: t[2], options: .init(mask: named))
        let want = try Attention().forward(
            query: t[0], key: t[1], value: t[2],
            options: .init(mask: MaskMod { _, _, q, kv in
                q >= kv && q / 30 == kv / 30 && q / 45 == kv / 45
            }))
        #expect(got.output.floats() == want.output.floats())
    }

    @Test("a table captured without a name is named by its contents, and its gradient is found by the table")
    func unnamedTableGradient() throws {
        var generator = SeededRandom(seed: freshSeed())
        let values = (0..<(2 * 9)).map { _ in Float.random(in: -1...1, using: &generator) }
        let bias = try FloatTable(values, shape: [2, 9])
        #expect(try FloatTable(values, shape: [2, 9]).table == bias.table)
        #expect(try FloatTable(values.reversed(), shape: [2, 9]).table.name != bias.table.name)
        let scoreMod = ScoreMod { score, _, h, q, kv in score + bias[h, clamp(q - kv, -4, 4) + 4] }
        let t = try (0..<4).map { _ in try randomTensor([1, 2, 40, 16], rng: &generator) }
        let attention = Attention()
        let forward = try attention.forward(query: t[0], key: t[1], value: t[2], options: .init(scoreMod: scoreMod))
        let gradients = try attention.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3])
        let gradient = try #require(gradients[table: bias])
        #expect(gradient.shape == [2, 9])
        #expect(gradient.floats() == gradients.tableGradients[bias.table.name]?.floats())
        #expect(gradients[table: try FloatTable(name: "elsewhere", values: [1], shape: [1])] == nil)

        let renamed = try ScoreMod.relativePositionBias(values, heads: 2, maxDistance: 4, tableName: "layer3_bias")
        let builtin = try attention.backward(
            query: t[0], key: t[1], value: t[2],
            forward: try attention.forward(query: t[0], key: t[1], value: t[2], options: .init(scoreMod: renamed)),
            outputGradient: t[3])
        #expect(builtin.tableGradients.keys.sorted() == ["layer3_bias"])
    }
}
