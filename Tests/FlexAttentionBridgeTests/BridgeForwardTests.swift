import CFlexAttention
@testable import FlexAttention
import Testing

@Suite("C interface: forward")
struct BridgeForwardTests {
    @Test("fa_attention_forward matches the Float64 reference: Sq ≠ Skv, D = 80, Dv = 48, GQA, bottom-right causal, both output kinds",
          arguments: [FA_DLPACK_VERSIONED, FA_DLPACK_LEGACY])
    func forwardMatchesReference(kind: fa_output_kind) throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let inputs = AttentionInputs(
            batch: 2, queryHeads: 4, keyValueHeads: 2, queryLength: 37, keyLength: 53, headDim: 80, valueDim: 48,
            rng: &rng)
        var desc = cpuDescription(
            batch: 2, queryHeads: 4, keyValueHeads: 2, queryLength: 37, keyLength: 53, headDim: 80, valueDim: 48)
        desc.causal = Int32(FA_CAUSAL_BOTTOM_RIGHT.rawValue)
        desc.scale = 0.11
        let attention = try createAttention(desc)
        defer { fa_attention_free(attention) }
        let (q, k, v) = try inputs.tensors()
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let status = q.with { q in k.with { k in v.with { v in
            fa_attention_forward(attention, q, k, v, nil, 0, nil, Int32(kind.rawValue), &output, &logSumExp)
        } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        let (o, lse) = (try ReturnedTensor(output, kind: kind), try ReturnedTensor(logSumExp, kind: kind))
        #expect(o.shape == [2, 4, 37, 48] && lse.shape == [2, 4, 37])
        #expect(o.dl.device.device_type == kDLCPU)
        var reference = inputs.reference(scale: 0.11)
        reference.keep = { _, _, i, j in i + 53 - 37 >= j }
        let expected = reference.forward()
        #expect(relativeError(try o.consume(), expected.o) < 2e-5, "seed \(seed)")
        #expect(relativeError(try lse.consume(), expected.lse) < 2e-5, "seed \(seed)")
    }

    @Test("fa_attention_forward_into writes O into a strided BSHD view from BSHD inputs with byte offsets, Float16")
    func forwardIntoStridedViews() throws {
        let seed = freshSeed()
        var rng = SplitMix64(seed: seed)
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 6, keyValueHeads: 3, queryLength: 19, keyLength: 70, headDim: 32, valueDim: 32,
            rng: &rng)
        let attention = try createAttention(cpuDescription(
            batch: 1, queryHeads: 6, keyValueHeads: 3, queryLength: 19, keyLength: 70, headDim: 32, valueDim: 32,
            dtype: .float16))
        defer { fa_attention_free(attention) }
        let q = try HostTensor.bshd(inputs.query, shape: inputs.queryShape, dtype: .float16)
        let k = try HostTensor.bshd(inputs.key, shape: inputs.keyShape, dtype: .float16, padding: 8)
        let v = try HostTensor.bshd(inputs.value, shape: inputs.valueShape, dtype: .float16, padding: 1)
        let outputShape = [1, 6, 19, 32]
        let output = try HostTensor.poisoned(
            shape: outputShape, dtype: .float16, strides: [19 * 6 * 32, 32, 6 * 32, 1])
        let logSumExp = try HostTensor.poisoned(shape: [1, 6, 19])
        let status = q.with { q in k.with { k in v.with { v in output.withMutable { o in logSumExp.withMutable { l in
            fa_attention_forward_into(attention, q, k, v, nil, 0, o, l, nil)
        } } } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        // The reference sees the inputs rounded to Float16, as the library does.
        let rounded = { (values: [Float]) in values.map { Double(Float(Float16($0))) } }
        let reference = ReferenceAttention(
            shape: (1, 6, 3, 19, 70, 32, 32), q: rounded(inputs.query), k: rounded(inputs.key),
            v: rounded(inputs.value), scale: 1 / Double(32).squareRoot())
        let expected = reference.forward()
        #expect(relativeError(try output.floats(), expected.o) < 2e-3, "seed \(seed)")
        #expect(relativeError(try logSumExp.floats(), expected.lse) < 2e-5, "seed \(seed)")
    }

    @Test("empty attention on the CPU: no keys give O = 0 and LSE = −∞")
    func emptyKeys() throws {
        let attention = try createAttention(cpuDescription(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 3, keyLength: 0, headDim: 8, valueDim: 8))
        defer { fa_attention_free(attention) }
        let q = try HostTensor([Float](repeating: 1, count: 48), shape: [1, 2, 3, 8])
        let k = HostTensor(byteCount: 0, dtype: .float32, shape: [1, 1, 0, 8], strides: nil)
        k.dl.data = nil  // DLPack allows NULL data for an empty tensor
        let v = HostTensor(byteCount: 0, dtype: .float32, shape: [1, 1, 0, 8], strides: nil)
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let kind = FA_DLPACK_VERSIONED
        let status = q.with { q in k.with { k in v.with { v in
            fa_attention_forward(attention, q, k, v, nil, 0, nil, Int32(kind.rawValue), &output, &logSumExp)
        } } }
        #expect(status == FA_OK, "\(lastErrorMessage())")
        #expect(try ReturnedTensor(output, kind: kind).consume() == [Float](repeating: 0, count: 48))
        #expect(try ReturnedTensor(logSumExp, kind: kind).consume() == [Float](repeating: -.infinity, count: 6))
    }

    @Test("fa_abi_version is the header's; freeing NULL is a no-op; a table name past the end is NULL")
    func smallFunctions() throws {
        #expect(fa_abi_version() == FA_ABI_VERSION)
        fa_attention_free(nil)
        fa_block_mask_free(nil)
        #expect(String(cString: fa_block_mask_description(nil)) == "")
        #expect(fa_attention_gradient_table_count(nil) == 0)
        let attention = try createAttention(cpuDescription(
            batch: 1, queryHeads: 1, keyValueHeads: 1, queryLength: 4, keyLength: 4, headDim: 8, valueDim: 8))
        defer { fa_attention_free(attention) }
        #expect(fa_attention_gradient_table_count(attention) == 0)
        #expect(fa_attention_gradient_table_name(attention, 0) == nil)
    }
}
