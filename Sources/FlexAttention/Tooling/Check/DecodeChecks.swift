/// Decoding on the device (``DecodePlan`` over a ``DeviceKVCache``) against the Float64 ``DecodeReference``:
/// contiguous and paged caches (page sizes 1, 5, 16, 64, 256), GQA and MQA, 1 to 16 new queries, odd lengths, a
/// long sequence over many splits, mods, sinks (a row keeping nothing but its sink among them), every dtype; NaN
/// fills every slot past each length in every case. Then outputs written into poisoned caller tensors, refused
/// calls, determinism, a captured graph, the append kernel against the host cache's append, and the host path.
extension CUDAConformance {
    /// One decode problem: sizes, lengths, paging (`pageSize` nil for a contiguous cache) and options.
    struct DecodeCase {
        var label: String
        var dtype: DType
        var heads: (query: Int, kv: Int)
        var queryLength: Int
        var headDim: Int
        var valueDim: Int
        var lengths: [Int]
        /// Tokens per sequence for a contiguous cache (at least the longest length).
        var capacity: Int
        var pageSize: Int?
        var layout: TensorLayout = .bhsd
        var options = AttentionOptions()
        /// Free room per sequence in a paged cache's table and pool, for appends.
        var spareTokens = 0
    }

    /// A case's host inputs: the query, a cache with NaN in every slot past each length (unassigned pages
    /// included), and the checked problem.
    struct DecodeInputs {
        var query: Tensor
        var cache: KVCache
        var problem: DecodeProblem
    }

    func decodeChecks() -> [Check] {
        let gqa = (query: 32, kv: 8), mqa = (query: 8, kv: 1)
        var cases = [
            DecodeCase(label: "bf16 contiguous GQA 32/8 Sq=1 D=128, odd lengths", dtype: .bfloat16, heads: gqa,
                       queryLength: 1, headDim: 128, valueDim: 128, lengths: [1, 77, 300], capacity: 333),
            DecodeCase(label: "fp16 contiguous BSHD GQA 32/8 Sq=3 causal", dtype: .float16, heads: gqa, queryLength: 3,
                       headDim: 64, valueDim: 64, lengths: [3, 130], capacity: 200, layout: .bshd,
                       options: .init(isCausal: true)),
            DecodeCase(label: "bf16 paged 16 MQA 8/1 Sq=16 causal (128 rows)", dtype: .bfloat16, heads: mqa,
                       queryLength: 16, headDim: 128, valueDim: 128, lengths: [16, 211], capacity: 0, pageSize: 16,
                       options: .init(isCausal: true)),
            DecodeCase(label: "bf16 contiguous long sequence over many splits, D=128 Dv=64", dtype: .bfloat16,
                       heads: (4, 2), queryLength: 1, headDim: 128, valueDim: 64, lengths: [12345], capacity: 16384),
            DecodeCase(label: "fp32 contiguous GQA 4/2 Sq=3 causal (CUDA cores)", dtype: .float32, heads: (4, 2),
                       queryLength: 3, headDim: 64, valueDim: 64, lengths: [5, 190], capacity: 190,
                       options: .init(isCausal: true)),
            DecodeCase(label: "fp32 paged 5 GQA 32/8 Sq=1 (CUDA cores)", dtype: .float32, heads: gqa, queryLength: 1,
                       headDim: 128, valueDim: 128, lengths: [9, 61], capacity: 0, pageSize: 5),
            DecodeCase(label: "bf16 paged 7 D=72 (CUDA cores) Sq=2 causal", dtype: .bfloat16, heads: (4, 1),
                       queryLength: 2, headDim: 72, valueDim: 72, lengths: [40, 3], capacity: 0, pageSize: 7,
                       options: .init(isCausal: true)),
        ]
        for (pageSize, queryLength) in [(1, 1), (5, 3), (16, 16), (64, 1), (256, 3)] {
            cases.append(DecodeCase(
                label: "fp16 paged \(pageSize) GQA 32/8 Sq=\(queryLength) causal", dtype: .float16, heads: gqa,
                queryLength: queryLength, headDim: 128, valueDim: 128, lengths: [queryLength, 83, 301], capacity: 0,
                pageSize: pageSize, options: .init(isCausal: true)))
        }
        cases += decodeModCases()
        return cases.map { testCase in ("decode: \(testCase.label)", { try self.decodeMatchesReference(testCase, &$0) }) }
            + [("decode: into poisoned caller tensors, equal to allocated outputs, and two runs bit-identical",
                decodeIntoAndDeterminism),
               ("decode: a captured graph replays the decode", decodeGraph),
               ("decode: bad calls throw and leave the outputs untouched", decodeRefusals),
               ("decode: the append kernel writes what the host cache's append writes (contiguous)", { try self.decodeAppend(paged: false, &$0) }),
               ("decode: the append kernel writes what the host cache's append writes (paged 5, f32 tokens into bf16)", { try self.decodeAppend(paged: true, &$0) }),
               ("decode: the host path (f32 query against a bf16 cache, O in f32)", decodeHostPath)]
    }

    /// Cases with mods and sinks: a window, soft-capping, an ALiBi table, a document table, sinks with a row that
    /// keeps nothing but its sink.
    private func decodeModCases() -> [DecodeCase] {
        let gqa = (query: 32, kv: 8)
        guard let alibi = try? ScoreMod.alibi(heads: 32),
              let documents = try? MaskMod.documentCausal(ids: (0..<2048).map { $0 / 97 }) else { return [] }
        // Sequence 1's heads 2 and up keep nothing.
        let nothingForSome = MaskMod { b, h, _, _ in b != 1 || h < 2 }
        let sinks = (0..<32).map { $0 == 5 ? -Float.infinity : Float($0 % 7) * 0.5 - 1 }
        return [
            DecodeCase(label: "bf16 paged 16 sliding window 100 + soft-cap 20, Sq=3", dtype: .bfloat16, heads: gqa,
                       queryLength: 3, headDim: 128, valueDim: 128, lengths: [50, 999], capacity: 0, pageSize: 16,
                       options: .init(mask: .slidingWindow(100), scoreMod: .softCap(20))),
            DecodeCase(label: "fp16 contiguous ALiBi table, causal, Sq=2", dtype: .float16, heads: gqa, queryLength: 2,
                       headDim: 64, valueDim: 64, lengths: [70, 400], capacity: 512,
                       options: .init(isCausal: true, scoreMod: alibi)),
            DecodeCase(label: "bf16 paged 64 document mask (Int table), Sq=4", dtype: .bfloat16, heads: gqa,
                       queryLength: 4, headDim: 128, valueDim: 128, lengths: [300, 1000], capacity: 0, pageSize: 64,
                       options: .init(mask: documents)),
            DecodeCase(label: "bf16 paged 16 sinks, a row keeping only its sink, one head without one", dtype: .bfloat16,
                       heads: gqa, queryLength: 1, headDim: 128, valueDim: 128, lengths: [33, 500], capacity: 0,
                       pageSize: 16, options: .init(mask: nothingForSome, sinks: sinks)),
            DecodeCase(label: "fp16 contiguous sinks in one split (no combine), Sq=2", dtype: .float16, heads: gqa,
                       queryLength: 2, headDim: 128, valueDim: 128, lengths: [100, 200], capacity: 256,
                       options: .init(isCausal: true, sinks: sinks)),
            DecodeCase(label: "fp32 contiguous sinks and soft-cap over splits (CUDA cores)", dtype: .float32,
                       heads: (8, 2), queryLength: 1, headDim: 64, valueDim: 64, lengths: [4000], capacity: 4096,
                       options: .init(scoreMod: .softCap(5), sinks: (0..<8).map { Float($0) - 4 })),
        ]
    }

    /// Random inputs of a case; NaN in every cache slot no sequence holds.
    func decodeInputs(_ testCase: DecodeCase, _ random: inout SplitMix64) throws -> DecodeInputs {
        let (b, hkv, d, dv) = (testCase.lengths.count, testCase.heads.kv, testCase.headDim, testCase.valueDim)
        func value() -> Float { Float.random(in: -2...2, using: &random) }
        let cache: KVCache
        if let pageSize = testCase.pageSize {
            let pagesPerSequence = testCase.lengths.map { ($0 + pageSize - 1) / pageSize }
            let sparePages = (testCase.spareTokens + pageSize - 1) / pageSize + 1
            let maxPages = (pagesPerSequence.max() ?? 0) + sparePages
            let pageCount = pagesPerSequence.reduce(0, +) + b * sparePages + 2
            // Pages in a shuffled order, so that no sequence's pages are consecutive.
            var free = Array(0..<pageCount)
            free.shuffle(using: &random)
            var entries = [Int32](repeating: -1, count: b * maxPages)
            for (sequence, pages) in pagesPerSequence.enumerated() {
                for page in 0..<pages { entries[sequence * maxPages + page] = Int32(free.removeLast()) }
            }
            let table = try PageTable(entries: entries, batch: b, maxPagesPerSequence: maxPages, pageCount: pageCount,
                                      pageSize: pageSize)
            func pool(_ width: Int) throws -> Tensor {
                var values = [Float](repeating: .nan, count: pageCount * pageSize * hkv * width)
                for (sequence, length) in testCase.lengths.enumerated() {
                    for t in 0..<length {
                        let page = Int(table.page(sequence: sequence, position: t))
                        for head in 0..<hkv {
                            let start = ((page * pageSize + t % pageSize) * hkv + head) * width
                            for c in 0..<width { values[start + c] = value() }
                        }
                    }
                }
                return try Tensor(values, shape: [pageCount, pageSize, hkv, width], dtype: testCase.dtype)
            }
            cache = try KVCache(keyPages: pool(d), valuePages: pool(dv), pageTable: table, lengths: testCase.lengths)
        } else {
            let capacity = testCase.capacity
            // Filled in BSHD memory order for a BSHD case, then viewed as [B, Hkv, capacity, D].
            let bshd = testCase.layout == .bshd
            func tensor(_ width: Int) throws -> Tensor {
                var values = [Float](repeating: .nan, count: b * hkv * capacity * width)
                for (sequence, length) in testCase.lengths.enumerated() {
                    for head in 0..<hkv {
                        for t in 0..<length {
                            let row = bshd ? (sequence * capacity + t) * hkv + head : (sequence * hkv + head) * capacity + t
                            for c in 0..<width { values[row * width + c] = value() }
                        }
                    }
                }
                let shape = bshd ? [b, capacity, hkv, width] : [b, hkv, capacity, width]
                let made = try Tensor(values, shape: shape, dtype: testCase.dtype)
                return bshd ? try made.permuted([0, 2, 1, 3]) : made
            }
            cache = try KVCache(keys: tensor(d), values: tensor(dv), lengths: testCase.lengths)
        }
        let queryShape = [b, testCase.heads.query, testCase.queryLength, d]
        let query = try Tensor((0..<queryShape.reduce(1, *)).map { _ in value() }, shape: queryShape, dtype: testCase.dtype)
        let problem = try DecodeProblem(
            query: queryShape, cache: cache.index, kvHeads: hkv, headDim: d, valueDim: dv, options: testCase.options)
        return DecodeInputs(query: query, cache: cache, problem: problem)
    }

    /// The Float64 reference's tolerance on ‖out − ref‖ / ‖ref‖ for a dtype.
    private func decodeTolerance(_ dtype: DType) -> Float {
        dtype == .float32 ? 1e-4 : dtype == .float16 ? 5e-3 : 2e-2
    }

    private func decodeMatchesReference(_ testCase: DecodeCase, _ random: inout SplitMix64) throws -> String? {
        let inputs = try decodeInputs(testCase, &random)
        let cache = try DeviceKVCache(copying: inputs.cache, to: device)
        let plan = try DecodePlan(
            queryHeads: testCase.heads.query, queryLength: testCase.queryLength, cache: cache, options: testCase.options)
        let stream = try CUDAStream(device: device)
        let result = try plan.decode(query: DeviceTensor(copying: inputs.query, to: device), cache: cache, on: stream)
        try stream.synchronize()
        if testCase.lengths == [12345] && plan.splits < 8 { return "\(plan.splits) splits for one long sequence" }
        let want = try DecodeReference(problem: inputs.problem, query: inputs.query, cache: inputs.cache).attend()
        let tolerance = decodeTolerance(testCase.dtype)
        let (output, logSumExp) = (try result.output.copyToHost().floats(), try result.logSumExp.copyToHost().floats())
        return compare("O", output, want.output, tolerance: tolerance)
            ?? compare("LSE", logSumExp, want.logSumExp, tolerance: 1e-4)
    }

    /// A plan over a paged bf16 cache with a window and sinks, long enough to split, and its inputs on the device.
    private func decodeSetup(_ random: inout SplitMix64)
        throws -> (DecodePlan, DeviceKVCache, DeviceTensor, DecodeInputs) {
        let testCase = DecodeCase(
            label: "", dtype: .bfloat16, heads: (32, 8), queryLength: 2, headDim: 128, valueDim: 128,
            lengths: [900, 2500], capacity: 0, pageSize: 16,
            options: .init(mask: .slidingWindow(1500), sinks: (0..<32).map { Float($0) / 16 }))
        let inputs = try decodeInputs(testCase, &random)
        let cache = try DeviceKVCache(copying: inputs.cache, to: device)
        let plan = try DecodePlan(queryHeads: 32, queryLength: 2, cache: cache, options: testCase.options)
        return (plan, cache, try DeviceTensor(copying: inputs.query, to: device), inputs)
    }

    /// NaN-filled (0xFF bytes) outputs of a plan's shapes.
    private func poisonedDecodeOutputs(_ plan: DecodePlan, dtype: DType, on stream: CUDAStream) throws -> DeviceAttentionOutput {
        func tensor(_ shape: [Int], _ dtype: DType) throws -> DeviceTensor {
            let tensor = try DeviceTensor(device: device, dtype: dtype, shape: shape)
            try tensor.buffer.fill(0xFF, stream: stream)
            return tensor
        }
        return DeviceAttentionOutput(output: try tensor(plan.outputShape, dtype),
                                     logSumExp: try tensor(plan.logSumExpShape, .float32))
    }

    private func decodeIntoAndDeterminism(_ random: inout SplitMix64) throws -> String? {
        let (plan, cache, query, inputs) = try decodeSetup(&random)
        guard plan.splits > 1 else { return "the case meant to split ran in one split" }
        let stream = try CUDAStream(device: device)
        let allocated = try plan.decode(query: query, cache: cache, on: stream)
        let outputs = try (0..<2).map { _ in try poisonedDecodeOutputs(plan, dtype: .bfloat16, on: stream) }
        for output in outputs { try plan.decode(query: query, cache: cache, into: output, on: stream) }
        try stream.synchronize()
        let want = try DecodeReference(problem: inputs.problem, query: inputs.query, cache: inputs.cache).attend()
        if let failure = compare("O", try outputs[0].output.copyToHost().floats(), want.output, tolerance: 2e-2) {
            return failure
        }
        let bytes = try [allocated, outputs[0], outputs[1]].map {
            [try $0.output.buffer.bytes(), try $0.logSumExp.buffer.bytes()]
        }
        if bytes[1] != bytes[0] { return "outputs written into caller tensors differ from allocated ones" }
        return bytes[2] == bytes[1] ? nil : "two runs differ"
    }

    private func decodeGraph(_ random: inout SplitMix64) throws -> String? {
        let (plan, cache, query, _) = try decodeSetup(&random)
        let stream = try CUDAStream(device: device)
        let direct = try plan.decode(query: query, cache: cache, on: stream)
        let output = try poisonedDecodeOutputs(plan, dtype: .bfloat16, on: stream)
        try stream.synchronize()
        let graph = try CUDAGraph.capture(on: stream) {
            try plan.decode(query: query, cache: cache, into: output, on: stream)
        }
        try graph.launch(on: stream)
        try stream.synchronize()
        return try output.output.buffer.bytes() == direct.output.buffer.bytes()
            && output.logSumExp.buffer.bytes() == direct.logSumExp.buffer.bytes()
            ? nil : "the replayed graph's outputs differ from a direct call's"
    }

    private func decodeRefusals(_ random: inout SplitMix64) throws -> String? {
        let (plan, cache, query, inputs) = try decodeSetup(&random)
        let stream = try CUDAStream(device: device)
        let output = try poisonedDecodeOutputs(plan, dtype: .bfloat16, on: stream)
        let wrongDType = try poisonedDecodeOutputs(plan, dtype: .float16, on: stream)
        try stream.synchronize()
        let otherPages = try DeviceKVCache(
            batch: 2, kvHeads: 8, headDim: 128, pageCount: 400, pageSize: 8, maxPagesPerSequence: 200,
            dtype: .bfloat16, device: device)
        guard let table = inputs.cache.pageTable else { return "the paged case has no page table" }
        let short = try DeviceKVCache(keyPages: cache.keys, valuePages: cache.values, pageTable: table, lengths: [1, 2500])
        let strided = try DeviceTensor(
            buffer: output.logSumExp.buffer, dtype: .float32, shape: [2, 32, 1], strides: [64, 2, 1])
        let calls: [(String, () throws -> Void)] = [
            ("K as the query", { try plan.decode(query: cache.keys, cache: cache, into: output, on: stream) }),
            ("an f16 output", {
                try plan.decode(query: query, cache: cache,
                                into: DeviceAttentionOutput(output: wrongDType.output, logSumExp: output.logSumExp), on: stream)
            }),
            ("a cache of another page size", { try plan.decode(query: query, cache: otherPages, into: output, on: stream) }),
            ("a sequence shorter than Sq", { try plan.decode(query: query, cache: short, into: output, on: stream) }),
            ("a strided log-sum-exp", {
                try plan.decode(query: query, cache: cache,
                                into: DeviceAttentionOutput(output: output.output, logSumExp: strided), on: stream)
            }),
        ]
        if let accepted = firstAccepted(calls) { return accepted }
        do {
            _ = try DecodePlan(queryHeads: 32, queryLength: 1, cache: cache,
                               options: .init(blockMask: try BlockMask(.causal, batch: 1, heads: 1, queryLength: 64, keyLength: 64)))
            return "a block mask was accepted"
        } catch {}
        try stream.synchronize()
        let untouched = try arePoisoned([output.output, output.logSumExp])
        return untouched ? nil : "a refused call wrote an output"
    }

    /// Appends of 1, 7 and 20 tokens (crossing pages) to a device cache and to its host twin: the same tokens, lengths
    /// and table; then a decode over the grown cache against the reference.
    private func decodeAppend(paged: Bool, _ random: inout SplitMix64) throws -> String? {
        let testCase = DecodeCase(
            label: "", dtype: .bfloat16, heads: (8, 2), queryLength: 1, headDim: 64, valueDim: 64, lengths: [3, 40],
            capacity: 128, pageSize: paged ? 5 : nil, spareTokens: 28)
        var inputs = try decodeInputs(testCase, &random)
        let cache = try DeviceKVCache(copying: inputs.cache, to: device)
        let stream = try CUDAStream(device: device)
        let input: DType = paged ? .float32 : .bfloat16
        for count in [1, 7, 20] {
            let keys = try Tensor((0..<2 * 2 * count * 64).map { _ in Float.random(in: -2...2, using: &random) },
                                  shape: [2, 2, count, 64], dtype: input)
            let values = try Tensor((0..<2 * 2 * count * 64).map { _ in Float.random(in: -2...2, using: &random) },
                                    shape: [2, 2, count, 64], dtype: input)
            try inputs.cache.append(keys: keys, values: values)
            try cache.append(keys: DeviceTensor(copying: keys, to: device), values: DeviceTensor(copying: values, to: device),
                             on: stream)
        }
        try stream.synchronize()
        func bits(_ tensor: Tensor) -> [UInt32] { tensor.floats().map { $0.isNaN ? 0x7FC0_0000 : $0.bitPattern } }
        let (keys, values) = (try cache.keys.copyToHost(), try cache.values.copyToHost())
        if bits(keys) != bits(inputs.cache.keys) || bits(values) != bits(inputs.cache.values) {
            return "the device cache's tokens differ from the host cache's"
        }
        let lengths = try cache.lengthBuffer.bytes().withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        if lengths.map(Int.init) != inputs.cache.lengths || cache.lengths != inputs.cache.lengths {
            return "device lengths \(lengths), host \(inputs.cache.lengths)"
        }
        if let table = cache.tableBuffer {
            let entries = try table.bytes().withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
            if entries != inputs.cache.pageTable?.entries || cache.pageTable != inputs.cache.pageTable {
                return "the device block table differs from the host's"
            }
        }
        let query = try Tensor((0..<2 * 8 * 64).map { _ in Float.random(in: -2...2, using: &random) },
                               shape: [2, 8, 1, 64], dtype: .bfloat16)
        let plan = try DecodePlan(queryHeads: 8, queryLength: 1, cache: cache)
        let result = try plan.decode(query: DeviceTensor(copying: query, to: device), cache: cache, on: stream)
        try stream.synchronize()
        let problem = try DecodeProblem(
            query: query.shape, cache: inputs.cache.index, kvHeads: 2, headDim: 64, valueDim: 64, options: .init())
        let want = try DecodeReference(problem: problem, query: query, cache: inputs.cache).attend()
        return compare("O after appends", try result.output.copyToHost().floats(), want.output, tolerance: 2e-2)
    }

    private func decodeHostPath(_ random: inout SplitMix64) throws -> String? {
        let testCase = DecodeCase(
            label: "", dtype: .bfloat16, heads: (32, 8), queryLength: 1, headDim: 128, valueDim: 128,
            lengths: [64, 1000], capacity: 0, pageSize: 16, options: .init(scoreMod: .softCap(30), sinks: [Float](repeating: 0.5, count: 32)))
        var inputs = try decodeInputs(testCase, &random)
        inputs.query = try inputs.query.converted(to: .float32)
        let result = try CUDAHostDecode.decode(
            inputs.problem, query: inputs.query, cache: inputs.cache, ordinal: device.ordinal)
        guard result.output.dtype == .float32, result.logSumExp.dtype == .float32 else {
            return "O is \(result.output.dtype), LSE \(result.logSumExp.dtype)"
        }
        let want = try DecodeReference(problem: inputs.problem, query: inputs.query, cache: inputs.cache).attend()
        return compare("O", result.output.floats(), want.output, tolerance: 2e-2)
            ?? compare("LSE", result.logSumExp.floats(), want.logSumExp, tolerance: 1e-4)
    }
}
