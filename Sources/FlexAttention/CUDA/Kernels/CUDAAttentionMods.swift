/// The mods of one attention call as the CUDA kernels take them: `causal && mask` folded into one mask, both mods
/// emitted as device functions, and their constants and tables uploaded.
struct CUDAAttentionMods {
    /// The mask the kernels apply (the built-in causal folded in), nil when every score is kept.
    let mask: MaskMod?
    let maskFunction: CUDAModFunction?
    let scoreFunction: CUDAModFunction?
    let maskArguments: CUDAModArguments?
    let scoreArguments: CUDAModArguments?

    /// - Parameter includesGradients: whether the score mod is emitted with the derivatives backward needs.
    init(_ options: AttentionOptions, includesGradients: Bool, device: CUDADevice) throws {
        mask = options.effectiveMask
        maskFunction = mask.map { CUDAModFunction(mask: $0) }
        scoreFunction = options.scoreMod.map { CUDAModFunction(scoreMod: $0, includesGradients: includesGradients) }
        maskArguments = try mask.map { try CUDAModArguments($0.expression.arguments, device: device) }
        scoreArguments = try options.scoreMod.map { try CUDAModArguments($0.expression.arguments, device: device) }
    }

    /// The mask's block list at a kernel's block sizes (nil without a mask): by query block, or `transposed` by key
    /// block.
    func blockList(
        for kernel: some AttentionKernel, shape: AttentionShape, transposed: Bool = false, device: CUDADevice
    ) throws -> CUDABlockList? {
        try mask.map {
            try CUDABlockList(
                BlockMask($0, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                          keyLength: shape.keyLength, queryBlockSize: kernel.queryBlock, keyBlockSize: kernel.keyBlock),
                transposed: transposed, device: device)
        }
    }

    /// The kernel parameters after the block list: the mask's three, then the score mod's three.
    var kernelArguments: [KernelArgument] {
        (maskArguments?.kernelArguments ?? []) + (scoreArguments?.kernelArguments ?? [])
    }

    /// The block list's four parameters (null pointers and zero strides without a mask).
    static func blockArguments(_ blocks: CUDABlockList?) -> [KernelArgument] {
        [.pointer(blocks?.starts.address ?? 0), .pointer(blocks?.entries.address ?? 0)]
            + [blocks?.batchStride ?? 0, blocks?.headStride ?? 0].map { .int32(Int32($0)) }
    }
}
