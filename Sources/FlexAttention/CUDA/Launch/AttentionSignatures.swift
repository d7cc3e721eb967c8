/// The parameter lists of the attention kernels, one per role, written once: every family (`mma.sync`, CUDA-core,
/// Hopper) renders its C signature from these and its launcher its arguments, so they agree by construction.
enum AttentionSignatures {
    /// The forward kernels: `[tensor maps,] Q, K, V, O, LSE, the tile counter, heads per band of the tile order, B,
    /// sizes, strides, block list, mods` (the Hopper kernel reads B and the band, and the tile counter where it is
    /// persistent).
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
            .pointer("tileCounter", "int", readOnly: false, restricted: false) { $0.tileCounter },
            .int32("bandHeads") { $0.bandHeads },
        ]
        let strides: [P] = P.strides("qs") { $0.query.strides } + P.strides("ks") { $0.key.strides }
            + P.strides("vs") { $0.value.strides } + P.strides("os") { $0.output.strides }
        return KernelSignature(
            maps + tensors + [.int32("B") { $0.shared.sizes.batch }] + sizes { $0.shared } + strides
                + sharedTail(mask: mask, scoreMod: scoreMod) { $0.shared })
    }

    /// The gradient kernels: `[tensor maps,] Q, K, V, dO, LSE, Delta, [block rows,] gradients, [dQ sums, their turn
    /// counters, the block list's turns, heads per band of the launch order,] sizes, strides, block list, mods [, table gradients]`, with `gradients`
    /// named (`dK`, `dV`, or `dQ`); the block rows are ``DeltaKernel``'s per-block LSE and Delta, the sums
    /// ``QueryGradientSums``.
    static func gradient(
        storage: String, tensorMaps: Bool, blockRows: Bool = false, gradients: [String], queryGradientSums: Bool = false,
        mask: Bool, scoreMod: Bool, tableGradients: Bool
    ) -> KernelSignature<GradientOperands> {
        typealias P = KernelParameter<GradientOperands>
        let maps: [P] = !tensorMaps ? [] : ["qMap", "kMap", "vMap", "dOMap"].enumerated().map { index, name in
            .tensorMap(name) { $0.tensorMaps[index] }
        }
        let inputs: [P] = [
            .pointer("Q", storage) { $0.query.address }, .pointer("K", storage) { $0.key.address },
            .pointer("V", storage) { $0.value.address }, .pointer("dO", storage) { $0.outputGradient.address },
            .pointer("LSE", "float") { $0.logSumExp }, .pointer("Delta", "float") { $0.delta },
        ] + (blockRows ? [.pointer("blockRows", "float") { $0.blockRows }] : [])
        let outputs: [P] = gradients.enumerated().map { index, name in
            .pointer(name, storage, readOnly: false) { $0.gradients[index] }
        } + (!queryGradientSums ? [] : [
            .pointer("dQsums", "float", readOnly: false) { $0.queryGradientSums.sums },
            .pointer("dQturns", "int", readOnly: false, restricted: false) { $0.queryGradientSums.turns },
            .pointer("blockTurns", "int") { $0.queryGradientSums.blockTurns },
            .int32("bandHeads") { $0.queryGradientSums.bandHeads },
        ])
        let strides: [P] = P.strides("qs") { $0.query.strides } + P.strides("ks") { $0.key.strides }
            + P.strides("vs") { $0.value.strides } + P.strides("dos") { $0.outputGradient.strides }
        let tables: [P] = scoreMod && tableGradients
            ? [.pointer("table_gradients", "fa_u64", restricted: false) { $0.tableGradients }] : []
        return KernelSignature(
            maps + inputs + outputs + sizes { $0.shared } + strides
                + sharedTail(mask: mask, scoreMod: scoreMod) { $0.shared } + tables)
    }

    /// The Delta kernel: `O, dO, LSE, Delta, block rows (or null), Hq, Sq, Dv, O's strides, dO's strides, rows`.
    static func delta(storage: String) -> KernelSignature<DeltaOperands> {
        typealias P = KernelParameter<DeltaOperands>
        return KernelSignature(
            [.pointer("O", storage) { $0.output.address }, .pointer("dO", storage) { $0.outputGradient.address },
             .pointer("LSE", "float") { $0.logSumExp }, .pointer("Delta", "float", readOnly: false) { $0.delta },
             .pointer("blockRows", "float", readOnly: false) { $0.blockRows },
             .int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength }, .int32("Dv") { $0.valueDim }]
                + P.strides("os") { $0.output.strides } + P.strides("ds") { $0.outputGradient.strides }
                + [.int64("rowCount") { $0.rows }])
    }

    /// `Hq, Hkv, Sq, Skv, scale`.
    private static func sizes<Values>(_ shared: @escaping @Sendable (Values) -> SharedOperands) -> [KernelParameter<Values>] {
        [.int32("Hq") { shared($0).sizes.queryHeads }, .int32("Hkv") { shared($0).sizes.keyValueHeads },
         .int32("Sq") { shared($0).sizes.queryLength }, .int32("Skv") { shared($0).sizes.keyLength },
         .float32("scale") { shared($0).sizes.scale }]
    }

    /// `vectorLoads`, the block list's four parameters, then the mask's three and the score mod's three.
    private static func sharedTail<Values>(
        mask: Bool, scoreMod: Bool, _ shared: @escaping @Sendable (Values) -> SharedOperands
    ) -> [KernelParameter<Values>] {
        typealias P = KernelParameter<Values>
        let blocks: [P] = [
            .int32("vectorLoads") { shared($0).vectorLoads ? 1 : 0 },
            .pointer("blockStarts", "int") { shared($0).blocks.starts },
            .pointer("blockList", "int") { shared($0).blocks.entries },
            .int32("maskBatchStride") { shared($0).blocks.batchStride },
            .int32("maskHeadStride") { shared($0).blocks.headStride },
        ]
        func mod(_ role: String, _ operands: @escaping @Sendable (SharedOperands) -> ModOperands?) -> [P] {
            [.pointer("\(role)_ints", "long long", restricted: false) { operands(shared($0))?.ints ?? 0 },
             .pointer("\(role)_floats", "float", restricted: false) { operands(shared($0))?.floats ?? 0 },
             .pointer("\(role)_tables", "fa_u64", restricted: false) { operands(shared($0))?.tables ?? 0 }]
        }
        return blocks + (mask ? mod("mask") { $0.mask } : []) + (scoreMod ? mod("score") { $0.scoreMod } : [])
    }
}
