import Testing
@testable import FlexAttention

@Suite struct ModsTextTests {
    let doc = try! ModTable(name: "doc", shape: [8], elements: .int32([0, 0, 0, 1, 1, 2, 2, 2]))
    let bias = try! ModTable(name: "bias", shape: [2, 3], elements: .float([0.5, -1, 2, 0, 1, 3]))

    @Test("precedence and canonical forms print as written", arguments: [
        "q >= kv && q - kv < 1024",
        "q >= kv || kv < 4 && !doc[q] == doc[kv]",
        "!q < kv",
        "(q >= kv) == (kv > 3)",
        "q - (kv - 1) >= -3 * (h + 1) % 5",
        "-(q + kv) / 2 == -9223372036854775808",
        "where(q > kv, q, kv) <= clamp(q, 0, 4)",
        "abs(q - kv) <= min(max(q, 1), kv_len - q_len)",
        "float(q) * 0.5 < sqrt(float(kv)) + exp(-1.5e-05) - log(2.0)",
        "bias[h % 2, q % 3] > tanh(1.0) || (doc[q] / 2 == 0) == (h != 1)",
    ])
    func maskRoundTrip(_ text: String) throws {
        let mask = try MaskMod(parsing: text, tables: [doc, bias])
        #expect(mask.description == text)
        #expect(try MaskMod(parsing: mask.description, tables: [doc, bias]) == mask)
    }

    @Test func scoreRoundTripAndPromotion() throws {
        let score = try ScoreMod(parsing: "score + q", tables: [bias])
        #expect(score.description == "score + float(q)")
        #expect(try ScoreMod(parsing: score.description) == score)
        let nested = try ScoreMod(parsing: "-score * bias[h, 2] / (1.0 + score)", tables: [bias])
        #expect(nested.description == "-score * bias[h, 2] / (1.0 + score)")
        #expect(try ScoreMod(parsing: "score * -(2)").description == "score * -2.0")
    }

    @Test func parametersPrintAsNames() throws {
        let mask = try MaskMod(parsing: "q - kv < window", parameters: ["window": .int(256)])
        #expect(mask.description == "q - kv < window")
        #expect(mask.expression.arguments.scalars == [.int(256)])
        let traced = MaskMod { _, _, q, kv in q - kv < ModInt(try! ModParameter(name: "window", value: .int(256))) }
        #expect(traced == mask)
    }

    @Test func tracedAndParsedAgree() throws {
        let docTable = IntTable(table: doc)
        let traced = MaskMod { _, _, q, kv in (q >= kv && q - kv < 1024) || docTable[q] == docTable[kv] }
        #expect(traced == (try MaskMod(parsing: "q >= kv && q - kv < 1024 || doc[q] == doc[kv]", tables: [doc])))
        let composed = MaskMod.causal && !MaskMod.slidingWindow(4) || MaskMod.chunked(3)
        #expect(composed.description == "q >= kv && !(q >= kv && q - kv < 4) || q / 3 == kv / 3")
        let score = ScoreMod.softCap(30).then(ScoreMod { s, _, h, _, _ in s + h.float })
        #expect(score.description == "30.0 * tanh(score / 30.0) + float(h)")
    }

    @Test func structuralKeyIgnoresValues() throws {
        let a = MaskMod.slidingWindow(128).expression, b = MaskMod.slidingWindow(4096).expression
        #expect(a.structuralKey == b.structuralKey)
        #expect(a.arguments.scalars == [.int(128)])
        #expect(b.arguments.scalars == [.int(4096)])
        #expect(a.structuralKey != MaskMod.causal.expression.structuralKey)
        let ids = try MaskMod.document(ids: [0, 0, 1]).expression
        #expect(ids.structuralKey == "(== (t0:Int:1 q) (t0:Int:1 kv))")
        #expect(ids.arguments.tables.map(\.name) == ["doc"])
    }

    @Test("errors", arguments: [
        ("q >= ", "syntax error at character 5: expected a value, found the end"),
        ("q >= kv)", "syntax error at character 7: expected an operator or the end, found ')'"),
        ("q < kv < 3", "syntax error at character 7: expected an operator or the end, found '<'"),
        ("q = kv", "syntax error at character 2: expected an operator or the end, found '='"),
        ("q >= 3x", "syntax error at character 5: malformed number"),
        ("q >= 1e", "syntax error at character 6: exponent without digits"),
        ("float(q) < 1e39", "syntax error at character 11: 1e39 is outside the range of Float"),
        ("q < 9223372036854775808", "syntax error at character 4: 9223372036854775808 is outside the range of Int"),
        ("q >= window", "unknown name 'window' at character 5"),
        ("score > 0.0", "unknown name 'score' at character 0"),
        ("foo(q) > 0", "unknown name 'foo' at character 0"),
        ("min(q) > 0", "min takes 2 arguments, got 1"),
        ("clamp(q, 1) > 0", "clamp takes 3 arguments, got 2"),
        ("doc[q, kv] > 0", "doc takes 1 indices, got 2"),
        ("q && kv", "type error: '&&' cannot take Int operands in q && kv"),
        ("!q", "type error: '!' needs a Bool, got Int in !q"),
        ("doc[float(q)] > 0", "type error: table indices must be Ints, got Float in doc[float(q)]"),
        ("where(q, 1, 2) > 0", "type error: where needs a Bool condition in where(q, 1, 2)"),
        ("(q > 1) < (kv > 1)", "type error: '<' cannot take Bool operands in (q > 1) < (kv > 1)"),
        ("q + kv", "type error: a mask must be Bool-valued, got Int: q + kv"),
    ])
    func maskErrors(_ text: String, _ message: String) {
        #expect(throws: ModError.self) { try MaskMod(parsing: text, tables: [doc]) }
        do {
            _ = try MaskMod(parsing: text, tables: [doc])
        } catch {
            #expect("\(error)" == message)
        }
    }

    @Test func scoreErrors() {
        #expect(throws: ModError.typeMismatch("float() needs an Int, got Float in float(score)")) {
            try ScoreMod(parsing: "float(score)")
        }
        #expect(throws: ModError.typeMismatch("a score mod must be Float-valued, got Bool: score > 0.0")) {
            try ScoreMod(parsing: "score > 0")
        }
        #expect(throws: ModError.typeMismatch("a score mod must be Float-valued, got Int: q")) { try ScoreMod(parsing: "q") }
    }

    @Test func namesAndTables() throws {
        #expect(throws: ModError.invalidName("kv", reason: "a reserved word")) {
            try ModTable(name: "kv", shape: [1], elements: .int32([0]))
        }
        #expect(throws: ModError.invalidName("2x", reason: "not an identifier")) {
            try ModParameter(name: "2x", value: .int(1))
        }
        #expect(throws: ModError.self) { try ModTable(name: "t", shape: [2, 2], elements: .float([1])) }
        #expect(throws: ModError.self) { try ModTable(name: "t", shape: [1, 1, 1, 1], elements: .float([1])) }
        #expect(throws: ModError.invalidTable("t", reason: "value 4294967296 does not fit in Int32")) {
            try ModTable(name: "t", shape: [1], int64: [1 << 32])
        }
        let other = try ModTable(name: "doc", shape: [1], elements: .int32([5]))
        #expect(throws: ModError.conflictingTables("doc")) { try MaskMod(parsing: "q > 0", tables: [doc, other]) }
        let a = IntTable(table: doc), b = IntTable(table: other)
        #expect(throws: ModError.conflictingTables("doc")) { try MaskMod { _, _, q, kv in a[q] == b[kv] }.validate() }
        let flat = IntTable(table: doc)
        #expect(throws: ModError.wrongArity("doc", expected: "1 indices", actual: 2)) {
            try MaskMod { _, _, q, kv in flat[q, kv] == 0 }.validate()
        }
    }
}

extension IntTable {
    init(table: ModTable) { try! self.init(name: table.name, values: { if case .int32(let v) = table.elements { v } else { [] } }(), shape: table.shape) }
}
