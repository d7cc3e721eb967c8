/// An sm_90a attention kernel (``HopperForwardKernel``, and the backward's ``HopperGradientKernel`` and
/// ``HopperWideGradientKernel``): two consumer warpgroups and a producer warpgroup around a ``HopperPipeline``,
/// tiles in 64-column blocks.
protocol HopperAttentionKernel: TensorCoreAttentionKernel {
    var headDim: Int { get }
    var valueDim: Int { get }
    var pipeline: HopperPipeline { get }
    /// Warpgroups that compute, 64 rows (queries or keys) each.
    var consumerGroups: Int { get }
}

extension HopperAttentionKernel {
    var consumerGroups: Int { 2 }
    /// The consumer warpgroups and a producer warpgroup (one thread of it issues the copies): registers are
    /// handed out per warpgroup, and `setmaxnreg` moves the producer's to the consumers.
    var threads: Int { 128 * (consumerGroups + 1) }
    /// Registers per thread after `setmaxnreg`: the producer keeps 24 and the consumers share the rest, a multiple
    /// of 8 (240 for two consumer warpgroups, which hold S, O and P at 128 keys and Dv = 128; 160 for three). The
    /// two must leave room in the register file (128 · 24 + 256 · 240 = 64512 of 65536): `setmaxnreg.inc` waits
    /// until the registers are free, and with 128 · 32 + 256 · 240 = 65536 it never returned.
    var producerRegisters: Int { 24 }
    var consumerRegisters: Int { min(240, (65536 - 128 * producerRegisters) / (128 * consumerGroups) / 8 * 8) }
    /// Three stages give the copies a step and a half of slack; they fit at D = Dv = 128.
    var maxStages: Int { 3 }

    /// 64-column blocks of the D-wide tiles (Q, K), and of the Dv-wide ones (V, dO).
    var keyColumnBlocks: Int { (headDim + 63) / 64 }
    var valueColumnBlocks: Int { (valueDim + 63) / 64 }

    var sharedMemoryBytes: Int { pipeline.sharedMemoryBytes }

    func compiles(for architecture: GPUArchitecture) -> Bool { architecture == .sm90a }

    /// The tensor-core prelude and the Hopper helpers with the `wgmma` forms the kernel issues.
    func hopperPrelude(_ shapes: [WGMMAShape]) -> String {
        prelude + HopperHelpers.source(dtype, wgmmaShapes: shapes)
    }
}
