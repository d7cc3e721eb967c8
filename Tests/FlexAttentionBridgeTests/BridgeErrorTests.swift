import CFlexAttention
@testable import FlexAttention
import Foundation
import Testing

/// Every failure returns its status, leaves the out-parameters and outputs as they were, and sets a one-line
/// `fa_last_error()`; the next call works.
@Suite("C interface: errors")
struct BridgeErrorTests {
    static var desc: fa_attention_desc {
        cpuDescription(batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 5, keyLength: 7, headDim: 8, valueDim: 8)
    }

    /// Checks that `call` failed with `status` and a message containing `message`, on one line.
    static func expectFailure(_ status: fa_status, _ expected: fa_status, _ message: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(status == expected, "\(lastErrorMessage())", sourceLocation: sourceLocation)
        let text = lastErrorMessage()
        #expect(text.contains(message), "\(text)", sourceLocation: sourceLocation)
        #expect(!text.contains("\n"), sourceLocation: sourceLocation)
    }

    /// Calls `fa_attention_create` on `desc` changed by `change`.
    static func create(_ change: (inout fa_attention_desc) -> Void) -> (fa_status, OpaquePointer?) {
        var desc = Self.desc
        change(&desc)
        var handle: OpaquePointer?
        let status = fa_attention_create(&desc, &handle)
        return (status, handle)
    }

    @Test("fa_attention_create: NULL pointers, dtype, device, sizes, scale, causal, sinks and mods")
    func create() throws {
        let strings = CStrings()
        var handle: OpaquePointer?
        Self.expectFailure(fa_attention_create(nil, &handle), FA_ERROR_INVALID_ARGUMENT, "desc is NULL")
        var desc = Self.desc
        Self.expectFailure(fa_attention_create(&desc, nil), FA_ERROR_INVALID_ARGUMENT, "out is NULL")
        #expect(handle == nil)
        let invalid: [(String, (inout fa_attention_desc) -> Void, fa_status)] = [
            ("dtype (code 0, bits 32", { $0.dtype = DLDataType(code: 0, bits: 32, lanes: 1) }, FA_ERROR_INVALID_ARGUMENT),
            ("lanes 2", { $0.dtype.lanes = 2 }, FA_ERROR_INVALID_ARGUMENT),
            ("device type 3", { $0.device.device_type = kDLCUDAHost }, FA_ERROR_INVALID_ARGUMENT),
            ("batch is -1", { $0.batch = -1 }, FA_ERROR_INVALID_ARGUMENT),
            ("query_length is 4294967296", { $0.query_length = 1 << 32 }, FA_ERROR_INVALID_ARGUMENT),
            ("query heads (2) must be a multiple", { $0.key_value_heads = 3 }, FA_ERROR_INVALID_ARGUMENT),
            ("head dimension 600", { $0.head_dim = 600 }, FA_ERROR_UNSUPPORTED),
            ("scale is -1.0", { $0.scale = -1 }, FA_ERROR_INVALID_ARGUMENT),
            ("scale is inf", { $0.scale = .infinity }, FA_ERROR_INVALID_ARGUMENT),
            ("causal is 7", { $0.causal = 7 }, FA_ERROR_INVALID_ARGUMENT),
            ("sink_count is 1", { $0.sink_count = 1 }, FA_ERROR_INVALID_ARGUMENT),
            ("syntax error", { $0.score_mod.text = strings("score +* 2") }, FA_ERROR_MOD),
            ("unknown name 'bias'", { $0.score_mod.text = strings("score + bias[h]") }, FA_ERROR_MOD),
            ("a mask must be Bool-valued", { $0.mask_mod.text = strings("q - kv") }, FA_ERROR_MOD),
            ("score_mod.tables is NULL", { $0.score_mod = fa_mod(text: strings("score"), tables: nil, table_count: 2,
                                                                  parameters: nil, parameter_count: 0) },
             FA_ERROR_INVALID_ARGUMENT),
            ("score_mod.text is not UTF-8", { $0.score_mod.text = strings(bytes: [0x73, 0xFF]) },
             FA_ERROR_INVALID_ARGUMENT),
        ]
        for (message, change, status) in invalid {
            let (result, handle) = Self.create(change)
            Self.expectFailure(result, status, message)
            #expect(handle == nil)
        }
        // A successful call after the failures works.
        let (status, made) = Self.create { _ in }
        #expect(status == FA_OK)
        fa_attention_free(made)
    }

    @Test("the message is per thread: a failure on another thread leaves this thread's as it was")
    func perThread() {
        var handle: OpaquePointer?
        Self.expectFailure(fa_attention_create(nil, &handle), FA_ERROR_INVALID_ARGUMENT, "desc is NULL")
        let done = DispatchSemaphore(value: 0)
        let other = Thread {
            var desc = Self.desc
            _ = fa_attention_create(&desc, nil)
            done.signal()
        }
        other.start()
        done.wait()
        #expect(lastErrorMessage() == "desc is NULL")
    }

    @Test("a message longer than the store is cut to it, on one line")
    func longMessage() {
        let strings = CStrings()
        let name = String(repeating: "x", count: 5000)
        let (status, handle) = Self.create { $0.score_mod.text = strings("score +\n" + name) }
        Self.expectFailure(status, FA_ERROR_MOD, "unknown name 'xxx")
        #expect(handle == nil)
        #expect(lastErrorMessage().utf8.count == Int(FA_ERROR_STORE_CAPACITY) - 1)
    }

    @Test("fa_attention_create on CUDA without a GPU says so (or, with one, succeeds)")
    func cudaWithoutDevice() {
        let (status, handle) = Self.create { $0.device = DLDevice(device_type: kDLCUDA, device_id: 0) }
        if status == FA_OK {
            fa_attention_free(handle)
        } else {
            #expect(status == FA_ERROR_UNSUPPORTED || status == FA_ERROR_CUDA, "\(lastErrorMessage())")
            #expect(handle == nil && !lastErrorMessage().isEmpty)
        }
    }

    @Test("fa_attention_forward: NULL pointers, dtype, lanes, device, shape, rank, alignment, strides, output kind")
    func forward() throws {
        var rng = SplitMix64(seed: freshSeed())
        let attention = try createAttention(Self.desc)
        defer { fa_attention_free(attention) }
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 5, keyLength: 7, headDim: 8, valueDim: 8, rng: &rng)
        let (q, k, v) = try inputs.tensors()
        /// Runs the forward pass with the query's `DLTensor` changed by `change`.
        func run(kind: Int32 = 0, outputs: Bool = true, _ change: (inout DLTensor) -> Void = { _ in }) -> fa_status {
            let saved = q.dl
            defer { q.dl = saved }
            change(&q.dl)
            var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
            let status = q.with { q in k.with { k in v.with { v in
                withUnsafeMutablePointer(to: &output) { output in
                    fa_attention_forward(attention, q, k, v, nil, 0, nil, kind, outputs ? output : nil, &logSumExp)
                }
            } } }
            #expect(output == nil && logSumExp == nil || status == FA_OK)
            if status == FA_OK {
                try? ReturnedTensor(output, kind: FA_DLPACK_VERSIONED).release()
                try? ReturnedTensor(logSumExp, kind: FA_DLPACK_VERSIONED).release()
            }
            return status
        }
        // Shape and strides arrays of the altered views, alive for the whole test.
        let (shape, strides) = (UnsafeMutablePointer<Int64>.allocate(capacity: 4), UnsafeMutablePointer<Int64>.allocate(capacity: 4))
        defer { shape.deallocate(); strides.deallocate() }
        shape.initialize(from: [1, 2, 5, 4], count: 4)
        strides.initialize(from: [1 << 62, 1 << 62, 1 << 62, 1], count: 4)
        let cases: [(String, () -> fa_status)] = [
            ("integer dtype", { run { $0.dtype = DLDataType(code: UInt8(kDLInt.rawValue), bits: 32, lanes: 1) } }),
            ("lanes 2", { run { $0.dtype.lanes = 2 } }),
            ("float16; the attention takes float32", { run { $0.dtype.bits = 16 } }),
            ("query is on CUDA device 0", { run { $0.device.device_type = kDLCUDA } }),
            ("DLPack device type 7", { run { $0.device.device_type = DLDeviceType(rawValue: 7) } }),
            ("query must have 4 dimensions, got ndim = 3", { run { $0.ndim = 3 } }),
            ("shape [1, 2, 5, 4]", { run { $0.shape = shape } }),
            ("not aligned", { run { $0.byte_offset = 2 } }),
            ("query's data is NULL", { run { $0.data = nil } }),
            ("query's shape is NULL", { run { $0.shape = nil } }),
            ("reach past the address space", { run { $0.strides = strides } }),
            ("output_kind 5", { run(kind: 5) }),
            ("output is NULL", { run(outputs: false) }),
        ]
        for (message, call) in cases { Self.expectFailure(call(), FA_ERROR_INVALID_ARGUMENT, message) }
        #expect(run() == FA_OK)
        // Pinned and managed CUDA memory are host-accessible: a CPU call reads them in place.
        #expect(run { $0.device.device_type = kDLCUDAHost } == FA_OK)
        #expect(run { $0.device.device_type = kDLCUDAManaged } == FA_OK)

        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        Self.expectFailure(
            k.with { k in v.with { v in fa_attention_forward(attention, nil, k, v, nil, 0, nil, 0, &output, &logSumExp) } },
            FA_ERROR_INVALID_ARGUMENT, "query is NULL")
        Self.expectFailure(
            q.with { q in k.with { k in v.with { v in fa_attention_forward(nil, q, k, v, nil, 0, nil, 0, &output, &logSumExp) } } },
            FA_ERROR_INVALID_ARGUMENT, "attention is NULL")
        #expect(output == nil && logSumExp == nil)
    }

    @Test("fa_attention_forward_into: wrong outputs are refused and left as they were")
    func forwardInto() throws {
        var rng = SplitMix64(seed: freshSeed())
        let attention = try createAttention(Self.desc)
        defer { fa_attention_free(attention) }
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 5, keyLength: 7, headDim: 8, valueDim: 8, rng: &rng)
        let (q, k, v) = try inputs.tensors()
        let cases: [(String, HostTensor, HostTensor)] = [
            ("output is float16", try .poisoned(shape: [1, 2, 5, 8], dtype: .float16), try .poisoned(shape: [1, 2, 5])),
            ("output has shape [1, 2, 5, 7]", try .poisoned(shape: [1, 2, 5, 7]), try .poisoned(shape: [1, 2, 5])),
            ("log_sum_exp must be contiguous", try .poisoned(shape: [1, 2, 5, 8]),
             try .poisoned(shape: [1, 2, 5], strides: [20, 10, 2], byteCount: 80)),
        ]
        for (message, output, logSumExp) in cases {
            let status = q.with { q in k.with { k in v.with { v in output.withMutable { o in logSumExp.withMutable { l in
                fa_attention_forward_into(attention, q, k, v, nil, 0, o, l, nil)
            } } } } }
            Self.expectFailure(status, FA_ERROR_INVALID_ARGUMENT, message)
            #expect(try output.floats().allSatisfy(\.isNaN) && logSumExp.floats().allSatisfy(\.isNaN))
        }
        let status = q.with { q in k.with { k in v.with { v in
            fa_attention_forward_into(attention, q, k, v, nil, 0, nil, nil, nil)
        } } }
        Self.expectFailure(status, FA_ERROR_INVALID_ARGUMENT, "output is NULL")
    }

    @Test("fa_attention_backward: refused without the backward pass prepared or with NULL gradients")
    func backward() throws {
        var desc = Self.desc
        desc.includes_backward = 0
        let attention = try createAttention(desc)
        defer { fa_attention_free(attention) }
        var rng = SplitMix64(seed: freshSeed())
        let inputs = AttentionInputs(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 5, keyLength: 7, headDim: 8, valueDim: 8, rng: &rng)
        let (q, k, v) = try inputs.tensors()
        let (o, dO, lse) = (try HostTensor.poisoned(shape: [1, 2, 5, 8]), try HostTensor.poisoned(shape: [1, 2, 5, 8]),
                            try HostTensor.poisoned(shape: [1, 2, 5]))
        var (dq, dk, dv): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil, nil)
        let status = q.with { q in k.with { k in v.with { v in o.with { o in lse.with { lse in dO.with { dO in
            fa_attention_backward(attention, q, k, v, o, lse, dO, nil, 0, nil, 0, &dq, &dk, &dv, nil, nil)
        } } } } } }
        Self.expectFailure(status, FA_ERROR_INVALID_ARGUMENT, "without the backward pass")
        #expect(dq == nil && dk == nil && dv == nil)
    }

    @Test("fa_block_mask_create and fa_decode: NULL pointers, sizes, missing text, unpaired new tokens")
    func blockMaskAndDecode() throws {
        let strings = CStrings()
        var mask: OpaquePointer?
        Self.expectFailure(fa_block_mask_create(nil, 1, 1, 8, 8, &mask), FA_ERROR_INVALID_ARGUMENT, "mask is NULL")
        var empty = fa_mod()
        Self.expectFailure(fa_block_mask_create(&empty, 1, 1, 8, 8, &mask), FA_ERROR_INVALID_ARGUMENT, "no text")
        var causal = fa_mod(text: strings("q >= kv"), tables: nil, table_count: 0, parameters: nil, parameter_count: 0)
        Self.expectFailure(fa_block_mask_create(&causal, 1, 0, 8, 8, &mask), FA_ERROR_INVALID_ARGUMENT, "heads is 0")
        var bad = fa_mod(text: strings("q >= "), tables: nil, table_count: 0, parameters: nil, parameter_count: 0)
        Self.expectFailure(fa_block_mask_create(&bad, 1, 1, 8, 8, &mask), FA_ERROR_MOD, "syntax error")
        var sparsity = 0.0
        Self.expectFailure(fa_block_mask_sparsity(nil, &sparsity), FA_ERROR_INVALID_ARGUMENT, "mask is NULL")
        #expect(mask == nil)

        let query = try HostTensor([Float](repeating: 0, count: 8), shape: [1, 1, 1, 8])
        let cache = try HostTensor([Float](repeating: 0, count: 32), shape: [1, 1, 4, 8])
        let lengths = HostTensor.integers([1], shape: [1], bits: 32)
        var desc = fa_decode_desc()
        var (output, logSumExp): (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)
        let unpaired = query.with { q in cache.with { kv in lengths.with { l in
            fa_decode(&desc, q, kv, kv, l, nil, q, nil, nil, 0, &output, &logSumExp)
        } } }
        Self.expectFailure(unpaired, FA_ERROR_INVALID_ARGUMENT, "new_keys and new_values")
        let noLengths = query.with { q in cache.with { kv in
            fa_decode(&desc, q, kv, kv, nil, nil, nil, nil, nil, 0, &output, &logSumExp)
        } }
        Self.expectFailure(noLengths, FA_ERROR_INVALID_ARGUMENT, "lengths is NULL")
        #expect(output == nil && logSumExp == nil)
        let works = query.with { q in cache.with { kv in lengths.with { l in
            fa_decode(&desc, q, kv, kv, l, nil, nil, nil, nil, 0, &output, &logSumExp)
        } } }
        #expect(works == FA_OK, "\(lastErrorMessage())")
        try ReturnedTensor(output, kind: FA_DLPACK_VERSIONED).release()
        try ReturnedTensor(logSumExp, kind: FA_DLPACK_VERSIONED).release()
    }
}
