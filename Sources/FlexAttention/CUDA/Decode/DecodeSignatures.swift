/// The parameter lists of the decode kernels (attention over a KV cache, the split combine, the cache append),
/// written once: each kernel renders its C signature from these and its launcher its arguments.
enum DecodeSignatures {
    /// The decode kernels of both families: `Q, K, V, block table, lengths, O, LSE, partials, sinks, sizes, strides,
    /// vectorLoads, mods`.
    static func decode(storage: String, mask: Bool, scoreMod: Bool) -> KernelSignature<DecodeOperands> {
        typealias P = KernelParameter<DecodeOperands>
        let tensors: [P] = [
            .pointer("Q", storage) { $0.query.address }, .pointer("K", storage) { $0.key.address },
            .pointer("V", storage) { $0.value.address }, .pointer("blockTable", "int") { $0.blockTable },
            .pointer("lengths", "int") { $0.lengths },
            .pointer("O", storage, readOnly: false) { $0.output.address },
            .pointer("LSE", "float", readOnly: false) { $0.logSumExp },
            .pointer("partialO", "float", readOnly: false) { $0.partialOutput },
            .pointer("partialLSE", "float", readOnly: false) { $0.partialLogSumExp },
            .pointer("sinks", "float") { $0.sinks },
        ]
        let sizes: [P] = [
            .int32("Hq") { $0.queryHeads }, .int32("Hkv") { $0.kvHeads }, .int32("Sq") { $0.queryLength },
            .int32("pageSize") { $0.pageSize }, .int32("tableStride") { $0.tableStride },
            .int32("splits") { $0.splits }, .float32("scale") { $0.scale },
        ]
        let strides: [P] = P.strides("qs") { $0.query.strides } + P.strides("ks") { $0.key.strides }
            + P.strides("vs") { $0.value.strides } + P.strides("os") { $0.output.strides }
        func mod(_ role: String, _ operands: @escaping @Sendable (DecodeOperands) -> ModOperands?) -> [P] {
            [.pointer("\(role)_ints", "long long", restricted: false) { operands($0)?.ints ?? 0 },
             .pointer("\(role)_floats", "float", restricted: false) { operands($0)?.floats ?? 0 },
             .pointer("\(role)_tables", "fa_u64", restricted: false) { operands($0)?.tables ?? 0 }]
        }
        return KernelSignature(
            tensors + sizes + strides + [.int32("vectorLoads") { $0.vectorLoads ? 1 : 0 }]
                + (mask ? mod("mask") { $0.mask } : []) + (scoreMod ? mod("score") { $0.scoreMod } : []))
    }

    /// The split combine: `partials, sinks, O, LSE, Hq, Sq, splits, rows, O's strides`.
    static func combine(storage: String) -> KernelSignature<DecodeCombineOperands> {
        typealias P = KernelParameter<DecodeCombineOperands>
        return KernelSignature(
            [.pointer("partialO", "float") { $0.partialOutput }, .pointer("partialLSE", "float") { $0.partialLogSumExp },
             .pointer("sinks", "float") { $0.sinks }, .pointer("O", storage, readOnly: false) { $0.output.address },
             .pointer("LSE", "float", readOnly: false) { $0.logSumExp },
             .int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength }, .int32("splits") { $0.splits },
             .int64("rows") { $0.rows }]
                + P.strides("os") { $0.output.strides })
    }

    /// The cache append: `new keys, new values, cache keys, cache values, block table, lengths, patch, sizes,
    /// strides`.
    static func append(input: String, storage: String) -> KernelSignature<KVAppendOperands> {
        typealias P = KernelParameter<KVAppendOperands>
        return KernelSignature(
            [.pointer("newK", input) { $0.newKeys.address }, .pointer("newV", input) { $0.newValues.address },
             .pointer("K", storage, readOnly: false) { $0.keys.address },
             .pointer("V", storage, readOnly: false) { $0.values.address },
             .pointer("blockTable", "int", readOnly: false) { $0.blockTable },
             .pointer("lengths", "int", readOnly: false) { $0.lengths },
             .pointer("patch", "int") { $0.patch },
             .int32("B") { $0.batch }, .int32("Hkv") { $0.kvHeads }, .int32("count") { $0.count },
             .int32("D") { $0.headDim }, .int32("DV") { $0.valueDim }, .int32("pageSize") { $0.pageSize },
             .int32("tableStride") { $0.tableStride }, .int32("patchCount") { $0.patchCount }]
                + P.strides("nks") { $0.newKeys.strides } + P.strides("nvs") { $0.newValues.strides }
                + P.strides("ks") { $0.keys.strides } + P.strides("vs") { $0.values.strides })
    }
}

/// A decode launch's operands.
struct DecodeOperands {
    var query: TensorOperand
    /// The cache's keys: `[B, Hkv, capacity, D]`, or the page pool `[pages, pageSize, Hkv, D]`.
    var key: TensorOperand
    var value: TensorOperand
    /// Int32 `[B, tableStride]`; 0 for a contiguous cache.
    var blockTable: UInt64
    var tableStride: Int
    /// Tokens per page; the capacity for a contiguous cache.
    var pageSize: Int
    /// Int32 `[B]`.
    var lengths: UInt64
    var output: TensorOperand
    var logSumExp: UInt64
    /// Float32 `[splits, rows, Dv]` and `[splits, rows]`; 0 when there is one split.
    var partialOutput: UInt64
    var partialLogSumExp: UInt64
    /// Float32 `[Hq]` sink logits; 0 for none.
    var sinks: UInt64
    var queryHeads: Int
    var kvHeads: Int
    var queryLength: Int
    var splits: Int
    var scale: Float
    var vectorLoads: Bool
    var mask: ModOperands?
    var scoreMod: ModOperands?
}

/// A combine launch's operands.
struct DecodeCombineOperands {
    var partialOutput: UInt64
    var partialLogSumExp: UInt64
    var sinks: UInt64
    var output: TensorOperand
    var logSumExp: UInt64
    var queryHeads: Int
    var queryLength: Int
    var splits: Int
    /// `B · Hq · Sq`.
    var rows: Int
}

/// An append launch's operands.
struct KVAppendOperands {
    var newKeys: TensorOperand
    var newValues: TensorOperand
    var keys: TensorOperand
    var values: TensorOperand
    var blockTable: UInt64
    var lengths: UInt64
    /// Int32: the lengths before the append (`B`), then `patchCount` pairs (table entry, page) in entry order.
    var patch: UInt64
    var batch: Int
    var kvHeads: Int
    var count: Int
    var headDim: Int
    var valueDim: Int
    var pageSize: Int
    var tableStride: Int
    var patchCount: Int
}
