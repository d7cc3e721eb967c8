import FlexAttention

/// `flexattn decode`: one decoding step over `.npy` files (see ``Flexattn/Decode``). As `run`, the output paths are
/// checked first, everything is read, checked and computed before anything is written, and outputs (Float32) are
/// written all or nothing.
struct DecodeCommand: FileCommand {
    let options: DecodeOptions

    var outputPaths: [String] { options.outputPaths }

    func computeOutputs() throws -> [OutputFile] {
        let tables = try CommandInputs.tables(options.tables)
        let attentionOptions = try CommandInputs.attentionOptions(
            scale: options.scale, mask: options.mask, score: options.score, tables: tables, sink: options.sink)
        let query = try CommandInputs.attentionTensor(options.query, option: "--q", layout: "[B, Hq, Sq, D]")
        let paged = options.blockTable != nil
        let cacheLayout = paged ? "[P, pageSize, Hkv, D]" : "[B, Hkv, Smax, D]"
        let keys = try CommandInputs.attentionTensor(options.keyCache, option: "--k-cache", layout: cacheLayout)
        let values = try CommandInputs.attentionTensor(options.valueCache, option: "--v-cache", layout: cacheLayout)
        let lengths = try withContext("--lengths \(options.lengths)") {
            try integers(NumPyArray(contentsOfFile: options.lengths), rank: 1, what: "[B] <i4 or <i8")
        }
        let cache: KVCache
        if let path = options.blockTable {
            let table = try withContext("--block-table \(path)") {
                let array = try NumPyArray(contentsOfFile: path)
                guard case .int32(let entries) = array.elements, array.shape.count == 2 else {
                    throw CommandLineError("expected [B, maxPages] <i4, got \(array.elements.descr) \(array.shape)")
                }
                return try PageTable(
                    entries: entries, batch: array.shape[0], maxPagesPerSequence: array.shape[1], pageCount: keys.shape[0],
                    pageSize: keys.shape[1])
            }
            cache = try KVCache(keyPages: keys, valuePages: values, pageTable: table, lengths: lengths)
        } else {
            cache = try KVCache(keys: keys, values: values, lengths: lengths)
        }
        let result = try Attention(device: options.device).decode(
            query: query, cache: cache, options: attentionOptions, outputDType: .float32)
        var outputs = [(options.output, result.output)]
        if let path = options.logSumExp { outputs.append((path, result.logSumExp)) }
        return try outputs.map { try OutputFile(path: $0.0, tensor: $0.1) }
    }

    /// The elements of an `<i4` or `<i8` array of `rank` dimensions.
    private func integers(_ array: NumPyArray, rank: Int, what: String) throws -> [Int] {
        guard array.shape.count == rank else { throw CommandLineError("expected \(what), got shape \(array.shape)") }
        switch array.elements {
        case .int32(let values): return values.map(Int.init)
        case .int64(let values): return values.map(Int.init)
        default: throw CommandLineError("expected \(what), got \(array.elements.descr)")
        }
    }
}
