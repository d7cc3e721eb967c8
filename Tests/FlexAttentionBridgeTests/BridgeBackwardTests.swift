import CFlexAttention
@testable import FlexAttention
import Testing

@Suite("C interface: backward")
struct BridgeBackwardTests {
    /// Runs forward then backward through the C interface on `inputs` with `dO`, returning every gradient.
    static func gradients(
        _ desc: fa_attention_desc, _ inputs: AttentionInputs, outputGradient: [Float], kind: fa_output_kind
    ) throws -> (dq: [Float], dk: [Float], dv: [Float], sink: [Float]?) {
        let attention = try createAttention(desc)
        defer { fa_attention_free(attention) }
        let (q, k, v) = try inputs.tensors()
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let forward = q.with { q in k.with { k in v.with { v in
            fa_attention_forward(attention, q, k, v, nil, 0, nil, Int32(kind.rawValue), &output, &logSumExp)
        } } }
        #expect(forward == FA_OK, "\(lastErrorMessage())")
        let (o, lse) = (try ReturnedTensor(output, kind: kind), try ReturnedTensor(logSumExp, kind: kind))
        defer { o.release(); lse.release() }
        let dO = try HostTensor(outputGradient, shape: o.shape)
        var (oView, lseView) = (o.dl, lse.dl)
        var (dq, dk, dv, sink): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                                 UnsafeMutableRawPointer?) = (nil, nil, nil, nil)
        let status = q.with { q in k.with { k in v.with { v in dO.with { dO in
            fa_attention_backward(
                attention, q, k, v, &oView, &lseView, dO, nil, 0, nil, Int32(kind.rawValue), &dq, &dk, &dv, nil, &sink)
        } } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        return (try ReturnedTensor(dq, kind: kind).consume(), try ReturnedTensor(dk, kind: kind).consume(),
                try ReturnedTensor(dv, kind: kind).consume(), try sink.map { try ReturnedTensor($0, kind: kind).consume() })
    }

    @Test("fa_attention_backward matches the Float64 reference: GQA, Sq ≠ Skv, D ≠ Dv, top-left causal",
          arguments: [FA_DLPACK_VERSIONED, FA_DLPACK_LEGACY])
    func backwardMatchesReference(kind: fa_output_kind) throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let inputs = AttentionInputs(
            batch: 2, queryHeads: 4, keyValueHeads: 1, queryLength: 29, keyLength: 41, headDim: 24, valueDim: 40,
            rng: &rng)
        var desc = cpuDescription(
            batch: 2, queryHeads: 4, keyValueHeads: 1, queryLength: 29, keyLength: 41, headDim: 24, valueDim: 40)
        desc.causal = Int32(FA_CAUSAL_TOP_LEFT.rawValue)
        let dO = randomValues(2 * 4 * 29 * 40, rng: &rng)
        let result = try Self.gradients(desc, inputs, outputGradient: dO, kind: kind)
        var reference = inputs.reference()
        reference.keep = { _, _, i, j in i >= j }
        let expected = reference.backward(dO.map(Double.init))
        #expect(result.sink == nil)
        #expect(relativeError(result.dq, expected.dq) < 2e-5, "seed \(seed)")
        #expect(relativeError(result.dk, expected.dk) < 2e-5, "seed \(seed)")
        #expect(relativeError(result.dv, expected.dv) < 2e-5, "seed \(seed)")
    }

    @Test("sinks: forward and backward, with the sinks' gradient, match the Float64 reference")
    func sinks() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 3, keyValueHeads: 3, queryLength: 17, keyLength: 17, headDim: 16, valueDim: 16,
            rng: &rng)
        let sinks: [Float] = [0.5, -.infinity, 2]
        var desc = cpuDescription(
            batch: 1, queryHeads: 3, keyValueHeads: 3, queryLength: 17, keyLength: 17, headDim: 16, valueDim: 16)
        let dO = randomValues(3 * 17 * 16, rng: &rng)
        let result = try sinks.withUnsafeBufferPointer { buffer in
            (desc.sinks, desc.sink_count) = (buffer.baseAddress, 3)
            return try Self.gradients(desc, inputs, outputGradient: dO, kind: FA_DLPACK_VERSIONED)
        }
        var reference = inputs.reference()
        reference.sinks = sinks.map(Double.init)
        let expected = reference.backward(dO.map(Double.init))
        #expect(relativeError(result.dq, expected.dq) < 2e-5, "seed \(seed)")
        #expect(relativeError(result.dv, expected.dv) < 2e-5, "seed \(seed)")
        #expect(relativeError(try #require(result.sink), expected.dsink) < 1e-4, "seed \(seed)")
    }
}
