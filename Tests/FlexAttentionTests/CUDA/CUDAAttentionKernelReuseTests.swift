import Testing
@testable import FlexAttention

@Suite("CUDA attention kernels")
struct CUDAAttentionKernelReuseTests {
    /// Every kernel a forward and backward call would run (tensor cores for bf16 at D = 64, CUDA cores for Float32),
    /// chosen the way the launchers choose them.
    private func kernels(
        batch: Int, length: Int, dtype: DType, options: AttentionOptions
    ) throws -> [any GeneratedKernel] {
        let tensor = try Tensor(zeros: [batch, 2, length, 64], dtype: dtype)
        let shape = try AttentionShape(query: tensor, key: tensor, value: tensor)
        let mask = options.mask.map { CUDAModFunction(mask: $0) }
        let scoreMod = options.scoreMod.map { CUDAModFunction(scoreMod: $0) }
        let sharedMemory = 227 * 1024
        let backward = try BackwardProgram.kernels(
            shape: shape, mask: mask, scoreMod: scoreMod, maxSharedMemory: sharedMemory, tensorMaps: true)
        return [
            try ForwardProgram.kernel(
                shape: shape, mask: mask, scoreMod: scoreMod, maxSharedMemory: sharedMemory, tensorMaps: true),
            DeltaKernel(dtype: dtype), backward.keyValue,
        ] + (backward.query.map { [$0] } ?? [QueryGradientFinishKernel(dtype: dtype)])
    }

    @Test("new lengths, batch sizes, constants and table contents compile no new attention kernel")
    func valuesAreArguments() throws {
        let compiler = CountingCompiler()
        let cache = KernelCache(compiler: compiler, root: nil)
        let calls: [(batch: Int, length: Int, window: Int, bias: [Float])] = [
            (1, 100, 40, (0..<2 * 21).map { Float($0) / 50 }),
            (3, 230, 77, (0..<2 * 61).map { -Float($0) / 30 }),
            (2, 4097, 1024, (0..<2 * 9).map(Float.init)),
        ]
        for dtype in [DType.bfloat16, .float32] {
            for call in calls {
                let options = AttentionOptions(
                    mask: .slidingWindow(call.window),
                    scoreMod: try .relativePositionBias(call.bias, heads: 2, maxDistance: call.bias.count / 4))
                for kernel in try kernels(batch: call.batch, length: call.length, dtype: dtype, options: options) {
                    _ = try cache.cubin(for: KernelRequest(name: kernel.name, source: kernel.source, architecture: .sm90a))
                }
            }
        }
        #expect(compiler.count == 8)  // four kernels per family (Hopper's with dQ's finish), compiled once each
    }
}
