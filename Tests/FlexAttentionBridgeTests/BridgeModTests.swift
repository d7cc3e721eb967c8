import CFlexAttention
@testable import FlexAttention
import Foundation
import Testing

@Suite("C interface: mods, tables and block masks")
struct BridgeModTests {
    static let (batch, heads, length, dim) = (2, 2, 23, 16)

    /// A score mod reading a Float table `bias [Hq, Skv]` and an Int parameter, on the CPU.
    static func biasAttention(_ bias: HostTensor, strings: CStrings) throws -> OpaquePointer {
        var desc = cpuDescription(
            batch: batch, queryHeads: heads, keyValueHeads: heads, queryLength: length, keyLength: length, headDim: dim,
            valueDim: dim)
        var table = fa_table(name: strings("bias"), values: nil)
        var parameter = fa_parameter(
            name: strings("shift"), kind: Int32(FA_SCALAR_INT.rawValue), int_value: 1, float_value: 0)
        return try bias.with { values in
            table.values = values
            return try withUnsafePointer(to: &table) { table in
                try withUnsafePointer(to: &parameter) { parameter in
                    desc.score_mod = fa_mod(
                        text: strings("score + bias[h, kv] * float(shift)"), tables: table, table_count: 1,
                        parameters: parameter, parameter_count: 1)
                    return try createAttention(desc)
                }
            }
        }
    }

    @Test("a Float table: forward, backward and the table's gradient match the Float64 reference; per-call values replace it for later calls")
    func floatTable() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let (b, h, s, d) = (Self.batch, Self.heads, Self.length, Self.dim)
        let inputs = AttentionInputs(
            batch: b, queryHeads: h, keyValueHeads: h, queryLength: s, keyLength: s, headDim: d, valueDim: d, rng: &rng)
        let strings = CStrings()
        let (first, second) = (randomValues(h * s, rng: &rng), randomValues(h * s, rng: &rng))
        let attention = try Self.biasAttention(try HostTensor(first, shape: [h, s]), strings: strings)
        defer { fa_attention_free(attention) }
        #expect(fa_attention_gradient_table_count(attention) == 1)
        #expect(String(cString: try #require(fa_attention_gradient_table_name(attention, 0))) == "bias")

        // Forward with new values for this call and later ones.
        let (q, k, v) = try inputs.tensors()
        let newBias = try HostTensor(second, shape: [h, s])
        var perCall = fa_table(name: strings("bias"), values: nil)
        let kind = FA_DLPACK_VERSIONED
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let forward = q.with { q in k.with { k in v.with { v in newBias.with { values in
            perCall.values = values
            return fa_attention_forward(attention, q, k, v, &perCall, 1, nil, Int32(kind.rawValue), &output, &logSumExp)
        } } } }
        #expect(forward == FA_OK, "\(lastErrorMessage())")
        var reference = inputs.reference()
        reference.score = { score, _, head, _, key in (score + Double(second[head * s + key]), 1) }
        let (o, lse) = (try ReturnedTensor(output, kind: kind), try ReturnedTensor(logSumExp, kind: kind))
        defer { o.release(); lse.release() }
        #expect(relativeError(try o.floats(), reference.forward().o) < 2e-5, "seed \(seed)")

        // Backward without tables: the values of the forward call are kept.
        let dOValues = randomValues(b * h * s * d, rng: &rng)
        let dO = try HostTensor(dOValues, shape: [b, h, s, d])
        var (oView, lseView) = (o.dl, lse.dl)
        var (dq, dk, dv, tableGradient): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                                          UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil, nil, nil)
        let backward = q.with { q in k.with { k in v.with { v in dO.with { dO in
            fa_attention_backward(
                attention, q, k, v, &oView, &lseView, dO, nil, 0, nil, Int32(kind.rawValue), &dq, &dk, &dv,
                &tableGradient, nil)
        } } } }
        #expect(backward == FA_OK, "\(lastErrorMessage())")
        let expected = reference.backward(dOValues.map(Double.init))
        #expect(relativeError(try ReturnedTensor(dq, kind: kind).consume(), expected.dq) < 2e-5, "seed \(seed)")
        #expect(relativeError(try ReturnedTensor(dk, kind: kind).consume(), expected.dk) < 2e-5, "seed \(seed)")
        #expect(relativeError(try ReturnedTensor(dv, kind: kind).consume(), expected.dv) < 2e-5, "seed \(seed)")
        // ∂loss/∂bias[h, kv] sums the scores' gradients over batches and queries.
        var expectedTable = [Double](repeating: 0, count: h * s)
        for bb in 0..<b {
            for hh in 0..<h {
                for i in 0..<s {
                    for j in 0..<s { expectedTable[hh * s + j] += expected.dscore[((bb * h + hh) * s + i) * s + j] }
                }
            }
        }
        let table = try ReturnedTensor(tableGradient, kind: kind)
        #expect(table.shape == [h, s])
        #expect(relativeError(try table.consume(), expectedTable) < 1e-4, "seed \(seed)")
    }

    @Test("per-call tables are checked: another name, shape or dtype is refused and the values stay")
    func perCallTableChecks() throws {
        var rng = SplitMix64(seed: freshSeed())
        let strings = CStrings()
        let (h, s) = (Self.heads, Self.length)
        let bias = randomValues(h * s, rng: &rng)
        let attention = try Self.biasAttention(try HostTensor(bias, shape: [h, s]), strings: strings)
        defer { fa_attention_free(attention) }
        let inputs = AttentionInputs(
            batch: Self.batch, queryHeads: h, keyValueHeads: h, queryLength: s, keyLength: s, headDim: Self.dim,
            valueDim: Self.dim, rng: &rng)
        let (q, k, v) = try inputs.tensors()
        let wrong: [(String, HostTensor, String)] = [
            ("slope", try HostTensor([Float](repeating: 0, count: h * s), shape: [h, s]), "not a Float table"),
            ("bias", try HostTensor([Float](repeating: 0, count: h * s), shape: [s, h]), "shape"),
            ("bias", try HostTensor([Float](repeating: 0, count: h * s), shape: [h, s], dtype: .float16), "float32"),
        ]
        for (name, values, message) in wrong {
            var table = fa_table(name: strings(name), values: nil)
            var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
            let status = q.with { q in k.with { k in v.with { v in values.with { values in
                table.values = values
                return fa_attention_forward(attention, q, k, v, &table, 1, nil, 0, &output, &logSumExp)
            } } } }
            #expect(status == FA_ERROR_INVALID_ARGUMENT)
            #expect(lastErrorMessage().contains(message), "\(lastErrorMessage())")
            #expect(output == nil && logSumExp == nil)
        }
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let status = q.with { q in k.with { k in v.with { v in
            fa_attention_forward(attention, q, k, v, nil, 0, nil, 0, &output, &logSumExp)
        } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        var reference = inputs.reference()
        reference.score = { score, _, head, _, key in (score + Double(bias[head * s + key]), 1) }
        #expect(relativeError(try ReturnedTensor(output, kind: FA_DLPACK_VERSIONED).consume(), reference.forward().o) < 2e-5)
        try ReturnedTensor(logSumExp, kind: FA_DLPACK_VERSIONED).release()
    }

    @Test("a block mask from text, with a parameter and broadcast batch and heads, matches the reference")
    func blockMask() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let strings = CStrings()
        var parameter = fa_parameter(
            name: strings("w"), kind: Int32(FA_SCALAR_INT.rawValue), int_value: 9, float_value: 0)
        var mask: OpaquePointer?
        let created = withUnsafePointer(to: &parameter) { parameter in
            var mod = fa_mod(
                text: strings("q >= kv && q - kv < w"), tables: nil, table_count: 0, parameters: parameter,
                parameter_count: 1)
            return fa_block_mask_create(&mod, 1, 1, 150, 150, &mask)
        }
        #expect(created == FA_OK, "\(lastErrorMessage())")
        let blockMask = try #require(mask)
        defer { fa_block_mask_free(blockMask) }
        var sparsity = -1.0
        #expect(fa_block_mask_sparsity(blockMask, &sparsity) == FA_OK)
        #expect(sparsity > 0.4 && sparsity < 0.8)
        #expect(String(cString: fa_block_mask_description(blockMask)) == "q >= kv && q - kv < w")

        var desc = cpuDescription(
            batch: 2, queryHeads: 3, keyValueHeads: 1, queryLength: 150, keyLength: 150, headDim: 8, valueDim: 8)
        desc.block_mask = blockMask
        let attention = try createAttention(desc)
        defer { fa_attention_free(attention) }
        let inputs = AttentionInputs(
            batch: 2, queryHeads: 3, keyValueHeads: 1, queryLength: 150, keyLength: 150, headDim: 8, valueDim: 8,
            rng: &rng)
        let (q, k, v) = try inputs.tensors()
        let output = try HostTensor.poisoned(shape: [2, 3, 150, 8])
        let logSumExp = try HostTensor.poisoned(shape: [2, 3, 150])
        let status = q.with { q in k.with { k in v.with { v in output.withMutable { o in logSumExp.withMutable { l in
            fa_attention_forward_into(attention, q, k, v, nil, 0, o, l, nil)
        } } } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        var reference = inputs.reference()
        reference.keep = { _, _, i, j in i >= j && i - j < 9 }
        #expect(relativeError(try output.floats(), reference.forward().o) < 2e-5, "seed \(seed)")
    }

    @Test("a mask as text reading an Int64 table (documents), with causal folded in, and a soft-cap score mod")
    func maskTextWithTable() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let strings = CStrings()
        let documents: [Int64] = (0..<40).map { $0 < 13 ? 0 : $0 < 31 ? 1 : 2 }
        let table = HostTensor.integers(documents, shape: [40], bits: 64)
        var desc = cpuDescription(
            batch: 1, queryHeads: 2, keyValueHeads: 2, queryLength: 40, keyLength: 40, headDim: 16, valueDim: 16)
        desc.causal = Int32(FA_CAUSAL_TOP_LEFT.rawValue)
        desc.score_mod = fa_mod(text: strings("5.0 * tanh(score / 5.0)"), tables: nil, table_count: 0, parameters: nil,
                                parameter_count: 0)
        let attention = try table.with { values in
            var entry = fa_table(name: strings("doc"), values: values)
            return try withUnsafePointer(to: &entry) { entry in
                desc.mask_mod = fa_mod(
                    text: strings("doc[q] == doc[kv]"), tables: entry, table_count: 1, parameters: nil,
                    parameter_count: 0)
                return try createAttention(desc)
            }
        }
        defer { fa_attention_free(attention) }
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 2, keyValueHeads: 2, queryLength: 40, keyLength: 40, headDim: 16, valueDim: 16,
            rng: &rng)
        let (q, k, v) = try inputs.tensors()
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let status = q.with { q in k.with { k in v.with { v in
            fa_attention_forward(attention, q, k, v, nil, 0, nil, 1, &output, &logSumExp)
        } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        var reference = inputs.reference()
        reference.keep = { _, _, i, j in i >= j && documents[i] == documents[j] }
        reference.score = { score, _, _, _, _ in
            let t = Foundation.tanh(score / 5)
            return (5 * t, 1 - t * t)
        }
        #expect(relativeError(try ReturnedTensor(output, kind: FA_DLPACK_LEGACY).consume(), reference.forward().o) < 2e-5,
                "seed \(seed)")
        try ReturnedTensor(logSumExp, kind: FA_DLPACK_LEGACY).release()
    }
}
