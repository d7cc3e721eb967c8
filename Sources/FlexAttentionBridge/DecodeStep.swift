import CFlexAttention
import FlexAttention

/// The arguments of one `fa_decode` call, read and checked, and the step run on the cache's device.
struct DecodeStep {
    let query: DLPackArgument
    let keys: DLPackArgument
    let values: DLPackArgument
    /// The tokens to append first; nil for none.
    let newTokens: (keys: DLPackArgument, values: DLPackArgument)?
    let options: AttentionOptions

    /// Plans of recent CUDA steps, so that repeated steps reuse one (see `fa_decode` in the header).
    static let plans = BoundedCache<DecodePlanKey, DecodePlan>(capacity: 32)

    init(
        _ desc: fa_decode_desc, query: UnsafePointer<DLTensor>?, keyCache: UnsafePointer<DLTensor>?,
        valueCache: UnsafePointer<DLTensor>?, newKeys: UnsafePointer<DLTensor>?, newValues: UnsafePointer<DLTensor>?
    ) throws {
        self.query = try DLPackArgument(query, name: "query", ranks: 4...4)
        keys = try DLPackArgument(keyCache, name: "key_cache", ranks: 4...4)
        values = try DLPackArgument(valueCache, name: "value_cache", ranks: 4...4)
        switch (newKeys, newValues) {
        case (nil, nil):
            newTokens = nil
        case let (newKeys?, newValues?):
            newTokens = (try DLPackArgument(newKeys, name: "new_keys", ranks: 4...4),
                         try DLPackArgument(newValues, name: "new_values", ranks: 4...4))
        default:
            throw BridgeError.invalid("new_keys and new_values must both be given, or both be NULL")
        }
        let dtype = try keys.floatType()
        for argument in [self.query, values] where try argument.floatType() != dtype {
            throw BridgeError.invalid("\(argument.name) is \(try argument.floatType()); the cache holds \(dtype)")
        }
        options = AttentionOptions(
            scale: try AttentionDescription.scale(desc.scale), isCausal: desc.causal != 0,
            mask: try ModArgument(desc.mask_mod, role: "mask_mod").mask(),
            scoreMod: try ModArgument(desc.score_mod, role: "score_mod").scoreMod(),
            sinks: try AttentionDescription.sinks(desc.sinks, count: desc.sink_count, queryHeads: self.query.shape[1]))
    }

    /// Tokens appended to each sequence.
    var appendedCount: Int { newTokens?.keys.shape[2] ?? 0 }

    /// The step on the CPU: append into the caller's cache memory, then decode.
    func runOnHost(lengths: DLPackArgument, pageTable: DLPackArgument?) throws -> (ProducedTensor, ProducedTensor) {
        let (keyTensor, valueTensor) = (try keys.hostTensor(), try values.hostTensor())
        let lengths = try Self.lengths(lengths, stream: nil)
        var cache: KVCache
        if let pageTable {
            let table = try self.pageTable(pageTable, stream: nil)
            try Self.checkPagesAssigned(table, lengths: lengths, appending: appendedCount)
            cache = try KVCache(keyPages: keyTensor, valuePages: valueTensor, pageTable: table, lengths: lengths)
        } else {
            cache = try KVCache(keys: keyTensor, values: valueTensor, lengths: lengths)
        }
        let result = try cache.decodeStep(
            query: query.hostTensor(), appendingKeys: newTokens?.keys.hostTensor(),
            values: newTokens?.values.hostTensor(), options: options)
        return (.host(result.output), .host(result.logSumExp))
    }

    /// The step on `device`, queued on `stream`: append into the caller's cache memory, then decode with a cached
    /// plan. Waits only to read device-resident lengths or page tables.
    func runOnDevice(_ device: CUDADevice, lengths: DLPackArgument, pageTable: DLPackArgument?, stream: CUDAStream)
        throws -> (ProducedTensor, ProducedTensor)
    {
        let (keyTensor, valueTensor) = (try keys.deviceTensor(on: device), try values.deviceTensor(on: device))
        let queryTensor = try query.deviceTensor(on: device)
        let appended = try newTokens.map { (try $0.keys.deviceTensor(on: device), try $0.values.deviceTensor(on: device)) }
        let lengths = try Self.lengths(lengths, stream: stream)
        let table = try pageTable.map { try self.pageTable($0, stream: stream) }
        if let table { try Self.checkPagesAssigned(table, lengths: lengths, appending: appendedCount) }
        let cache = try DeviceKVCache(
            keys: keyTensor, values: valueTensor, lengths: lengths, pageTable: table, stream: stream)
        let key = DecodePlanKey(
            ordinal: device.ordinal, dtype: cache.dtype, batch: cache.batch, kvHeads: cache.kvHeads,
            headDim: cache.headDim, valueDim: cache.valueDim, capacity: cache.capacity, pageSize: table?.pageSize,
            pageCount: table?.pageCount, queryHeads: query.shape[1], queryLength: query.shape[2], options: options)
        let plan = try Self.plans.value(for: key) {
            try DecodePlan(queryHeads: key.queryHeads, queryLength: key.queryLength, cache: cache, options: options)
        }
        // Checked before the append is queued, so that a refused step leaves the cache as it was.
        guard query.shape == plan.queryShape else {
            throw BridgeError.invalid("query has shape \(query.shape); the cache takes \(plan.queryShape)")
        }
        try Self.checkHoldsQueries(lengths, appending: appendedCount, queryLength: key.queryLength)
        let result = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: cache.dtype, shape: plan.outputShape, stream: stream),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: plan.logSumExpShape, stream: stream))
        if let (newKeys, newValues) = appended { try cache.append(keys: newKeys, values: newValues, on: stream) }
        try plan.decode(query: queryTensor, cache: cache, into: result, on: stream)
        return (.device(result.output), .device(result.logSumExp))
    }

    private static func lengths(_ argument: DLPackArgument, stream: CUDAStream?) throws -> [Int] {
        try argument.integers(stream: stream).map { Int($0) }
    }

    /// The page table `[B, maxPages]` over the key pool's pages and page size.
    private func pageTable(_ argument: DLPackArgument, stream: CUDAStream?) throws -> PageTable {
        let entries = try argument.integers(stream: stream).map { entry in
            guard let narrowed = Int32(exactly: entry) else {
                throw BridgeError.invalid("page_table holds \(entry), which is not a page index")
            }
            return narrowed
        }
        return try PageTable(
            entries: entries, batch: argument.shape[0], maxPagesPerSequence: argument.shape[1],
            pageCount: keys.shape[0], pageSize: keys.shape[1])
    }

    /// Checks that every position the step fills has a page: the caller's table is not changed, so the library
    /// must not assign pages of its own.
    private static func checkPagesAssigned(_ table: PageTable, lengths: [Int], appending count: Int) throws {
        guard lengths.count == table.batch else {
            throw BridgeError.invalid("\(lengths.count) lengths for a page table of \(table.batch) sequences")
        }
        for (b, length) in lengths.enumerated() {
            let (grown, overflow) = length.addingReportingOverflow(count)
            guard length >= 0, !overflow, grown <= table.capacity else {
                throw FlexAttentionError.cacheFull(sequence: b, length: grown, capacity: table.capacity)
            }
            for entry in 0..<(grown + table.pageSize - 1) / table.pageSize
            where table.entries[b * table.maxPagesPerSequence + entry] < 0 {
                throw BridgeError.invalid(
                    "sequence \(b) needs a page in page_table entry \(entry) for its \(grown) tokens and has none (-1);"
                        + " assign pages before the step")
            }
        }
    }

    /// Checks that each sequence holds its `queryLength` new queries once the step's tokens are appended.
    private static func checkHoldsQueries(_ lengths: [Int], appending count: Int, queryLength: Int) throws {
        if let b = lengths.indices.first(where: { lengths[$0] + count < queryLength }) {
            throw BridgeError.invalid(
                "sequence \(b) holds \(lengths[b] + count) tokens after the append, fewer than the \(queryLength) queries")
        }
    }
}

/// What a ``DecodePlan`` is made for: the device, the cache's layout, the query's heads and length, and the options
/// (mods compared with their tables' contents, so a new table value makes a new plan).
struct DecodePlanKey: Equatable, Sendable {
    let ordinal: Int
    let dtype: DType
    let batch: Int, kvHeads: Int, headDim: Int, valueDim: Int, capacity: Int
    let pageSize: Int?, pageCount: Int?
    let queryHeads: Int, queryLength: Int
    let options: AttentionOptions
}

@_cdecl("fa_decode")
public func decode(
    _ desc: UnsafePointer<fa_decode_desc>?, _ query: UnsafePointer<DLTensor>?, _ keyCache: UnsafePointer<DLTensor>?,
    _ valueCache: UnsafePointer<DLTensor>?, _ lengths: UnsafePointer<DLTensor>?, _ pageTable: UnsafePointer<DLTensor>?,
    _ newKeys: UnsafePointer<DLTensor>?, _ newValues: UnsafePointer<DLTensor>?, _ stream: UnsafeMutableRawPointer?,
    _ outputKind: Int32, _ output: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ logSumExp: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> fa_status {
    reportingStatus {
        guard let desc else { throw BridgeError.null("desc") }
        guard let output else { throw BridgeError.null("output") }
        guard let logSumExp else { throw BridgeError.null("log_sum_exp") }
        let kind = try DLPackOutputKind(outputKind)
        let step = try DecodeStep(
            desc.pointee, query: query, keyCache: keyCache, valueCache: valueCache, newKeys: newKeys,
            newValues: newValues)
        let lengthArgument = try DLPackArgument(lengths, name: "lengths", ranks: 1...1)
        let tableArgument = try pageTable.map { try DLPackArgument($0, name: "page_table", ranks: 2...2) }
        let result = if case .cuda(let ordinal) = step.keys.location {
            try step.runOnDevice(
                SharedDevice.open(ordinal), lengths: lengthArgument, pageTable: tableArgument,
                stream: CUDAStream(unowned: UInt(bitPattern: stream), device: SharedDevice.open(ordinal)))
        } else {
            try step.runOnHost(lengths: lengthArgument, pageTable: tableArgument)
        }
        let made = try DLPackOutputs.make([result.0, result.1], kind: kind)
        (output.pointee, logSumExp.pointee) = (made[0], made[1])
    }
}
