/// A plan's mods as the kernels take them: `causal && mask` folded into one mask, each mod emitted as device
/// functions (the score mod a second time with the derivatives backward needs), and their constants and tables
/// uploaded once, shared by every kernel of the plan.
final class PlanMods: Sendable {
    /// The mask the kernels apply (the built-in causal folded in), nil when every score is kept.
    let mask: MaskMod?
    let maskFunction: CUDAModFunction?
    /// The score mod's value alone, for the forward kernels.
    let forwardScoreFunction: CUDAModFunction?
    /// With derivatives, for the gradient kernels; nil when the plan has no backward.
    let backwardScoreFunction: CUDAModFunction?
    /// The caller's block mask, used for the kernels whose blocks are its size.
    let given: BlockMask?
    let maskArguments: CUDAModArguments?
    let scoreArguments: CUDAModArguments?

    init(_ problem: AttentionProblem, includesBackward: Bool, device: CUDADevice) throws {
        mask = problem.mask
        given = problem.blockMask
        maskFunction = mask.map { CUDAModFunction(mask: $0) }
        forwardScoreFunction = problem.scoreMod.map { CUDAModFunction(scoreMod: $0, includesGradients: false) }
        backwardScoreFunction = includesBackward
            ? problem.scoreMod.map { CUDAModFunction(scoreMod: $0, includesGradients: true) } : nil
        maskArguments = try mask.map { try CUDAModArguments($0.expression.arguments, device: device) }
        scoreArguments = try problem.scoreMod.map { try CUDAModArguments($0.expression.arguments, device: device) }
    }

    /// The mask's block list at a kernel's block sizes (nil without a mask): by query block, or `transposed` by key
    /// block.
    func blockList(
        for kernel: some AttentionKernel, shape: AttentionShape, transposed: Bool = false, device: CUDADevice
    ) throws -> CUDABlockList? {
        try mask.map {
            let blocks = try given?.atBlockSize(queryBlockSize: kernel.queryBlock, keyBlockSize: kernel.keyBlock, for: shape)
                ?? BlockMask($0, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                             keyLength: shape.keyLength, queryBlockSize: kernel.queryBlock, keyBlockSize: kernel.keyBlock)
            return try CUDABlockList(blocks, transposed: transposed, device: device)
        }
    }

    /// The operands every kernel of the plan shares but the vector-load flag, for a block list.
    func shared(sizes: AttentionSizes, vectorLoads: Bool, blocks: CUDABlockList?) -> SharedOperands {
        SharedOperands(
            sizes: sizes, vectorLoads: vectorLoads, blocks: BlockListOperand(blocks), mask: maskArguments?.operands,
            scoreMod: scoreArguments?.operands)
    }
}
