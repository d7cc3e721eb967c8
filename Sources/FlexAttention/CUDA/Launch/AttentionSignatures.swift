/// The parameter lists of the attention kernels, one per role, written once: every family (`mma.sync`, CUDA-core,
/// Hopper) renders its C signature from these and its launcher its arguments, so they agree by construction.
enum AttentionSignatures {
    /// The forward kernels: `[tensor maps,] Q, K, V, O, LSE, sizes, strides, block list, mods`.
    static func forward(storage: String, tensorMaps: Bool, mask: Bool, scoreMod: Bool)
        -> KernelSignature<ForwardOperands> {
        typealias P = KernelParameter<ForwardOperands>
        let maps: [P] = !tensorMaps ? [] : ["qMap", "kMap", "vMap"].enumerated().map { index, name in
            .tensorMap(name) { $0.tensorMaps[index] }
        }
        let tensors: [P] = [
            .pointer("Q", storage) { $0.query.address }, .pointer("K", storage) { $0.key.address },
            .pointer("V", storage) { $0.value.address }, .pointer("O", storage, readOnly: false) { $0.output.address },
            .pointer("LSE", "float", readOnly: false) { $0.logSumExp },
        ]
        let strides: [P] = P.strides("qs") { $0.query.strides } + P.strides("ks") { $0.key.strides }
            + P.strides("vs") { $0.value.strides } + P.strides("os") { $0.output.strides }
        return KernelSignature(
            maps + tensors + sizes(\ForwardOperands.shared) + strides
                + sharedTail(\ForwardOperands.shared, mask: mask, scoreMod: scoreMod))
    }

    /// The gradient kernels: `[tensor maps,] Q, K, V, dO, LSE, Delta, gradients, sizes, strides, block list, mods
    /// [, table gradients]`, with `gradients` named (`dK`, `dV`, or `dQ`).
    static func gradient(
        storage: String, tensorMaps: Bool, gradients: [String], mask: Bool, scoreMod: Bool, tableGradients: Bool
    ) -> KernelSignature<GradientOperands> {
        typealias P = KernelParameter<GradientOperands>
        let maps: [P] = !tensorMaps ? [] : ["qMap", "kMap", "vMap", "dOMap"].enumerated().map { index, name in
            .tensorMap(name) { $0.tensorMaps[index] }
        }
        let inputs: [P] = [
            .pointer("Q", storage) { $0.query.address }, .pointer("K", storage) { $0.key.address },
            .pointer("V", storage) { $0.value.address }, .pointer("dO", storage) { $0.outputGradient.address },
            .pointer("LSE", "float") { $0.logSumExp }, .pointer("Delta", "float") { $0.delta },
        ]
        let outputs: [P] = gradients.enumerated().map { index, name in
            .pointer(name, storage, readOnly: false) { $0.gradients[index] }
        }
        let strides: [P] = P.strides("qs") { $0.query.strides } + P.strides("ks") { $0.key.strides }
            + P.strides("vs") { $0.value.strides } + P.strides("dos") { $0.outputGradient.strides }
        let tables: [P] = scoreMod && tableGradients
            ? [.pointer("table_gradients", "fa_u64", restricted: false) { $0.tableGradients }] : []
        return KernelSignature(
            maps + inputs + outputs + sizes(\GradientOperands.shared) + strides
                + sharedTail(\GradientOperands.shared, mask: mask, scoreMod: scoreMod) + tables)
    }

    /// The Delta kernel: `O, dO, Delta, Hq, Sq, Dv, O's strides, dO's strides, rows`.
    static func delta(storage: String) -> KernelSignature<DeltaOperands> {
        typealias P = KernelParameter<DeltaOperands>
        return KernelSignature(
            [.pointer("O", storage) { $0.output.address }, .pointer("dO", storage) { $0.outputGradient.address },
             .pointer("Delta", "float", readOnly: false) { $0.delta },
             .int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength }, .int32("Dv") { $0.valueDim }]
                + P.strides("os") { $0.output.strides } + P.strides("ds") { $0.outputGradient.strides }
                + [.int64("rowCount") { $0.rows }])
    }

    /// `Hq, Hkv, Sq, Skv, scale`.
    private static func sizes<Values>(_ shared: KeyPath<Values, SharedOperands> & Sendable) -> [KernelParameter<Values>] {
        [.int32("Hq") { $0[keyPath: shared].sizes.queryHeads }, .int32("Hkv") { $0[keyPath: shared].sizes.keyValueHeads },
         .int32("Sq") { $0[keyPath: shared].sizes.queryLength }, .int32("Skv") { $0[keyPath: shared].sizes.keyLength },
         .float32("scale") { $0[keyPath: shared].sizes.scale }]
    }

    /// `vectorLoads`, the block list's four parameters, then the mask's three and the score mod's three.
    private static func sharedTail<Values>(
        _ shared: KeyPath<Values, SharedOperands> & Sendable, mask: Bool, scoreMod: Bool
    ) -> [KernelParameter<Values>] {
        typealias P = KernelParameter<Values>
        let blocks: [P] = [
            .int32("vectorLoads") { $0[keyPath: shared].vectorLoads ? 1 : 0 },
            .pointer("blockStarts", "int") { $0[keyPath: shared].blocks.starts },
            .pointer("blockList", "int") { $0[keyPath: shared].blocks.entries },
            .int32("maskBatchStride") { $0[keyPath: shared].blocks.batchStride },
            .int32("maskHeadStride") { $0[keyPath: shared].blocks.headStride },
        ]
        func mod(_ role: String, _ operands: KeyPath<SharedOperands, ModOperands?> & Sendable) -> [P] {
            [.pointer("\(role)_ints", "long long", restricted: false) { $0[keyPath: shared][keyPath: operands]?.ints ?? 0 },
             .pointer("\(role)_floats", "float", restricted: false) { $0[keyPath: shared][keyPath: operands]?.floats ?? 0 },
             .pointer("\(role)_tables", "fa_u64", restricted: false) { $0[keyPath: shared][keyPath: operands]?.tables ?? 0 }]
        }
        return blocks + (mask ? mod("mask", \.mask) : []) + (scoreMod ? mod("score", \.scoreMod) : [])
    }
}
