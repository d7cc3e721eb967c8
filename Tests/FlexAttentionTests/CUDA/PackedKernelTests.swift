import Testing
@testable import FlexAttention

/// The mods of packed sequences, each with `b` fixed to its index, as CUDA sees them.
@Suite("CUDA kernels for packed sequences")
struct PackedKernelTests {
    let mask: MaskMod
    let scoreMod: ScoreMod

    init() throws {
        let windows = try IntTable(name: "window", values: [5, 40, 3], shape: [3])
        let slopes = try FloatTable(name: "seq_slope", values: [0.1, -0.2, 0.3, 0, 0.5, -0.6], shape: [3, 2])
        mask = MaskMod { b, _, q, kv in q - kv < windows[b] }
        scoreMod = ScoreMod { score, b, h, q, kv in score + slopes[b, h % 2] * float(kv - q) }
    }

    @Test("every sequence index shares one kernel per mod")
    func oneKernelPerMod() throws {
        let compiler = CountingCompiler()
        let cache = KernelCache(compiler: compiler, root: nil)
        for index in 0..<3 {
            for kernel in [ModGridKernel(mask: mask.fixingBatch(index), label: "packed_window"),
                           ModGridKernel(scoreMod: scoreMod.fixingBatch(index), label: "packed_slope")] {
                _ = try cache.cubin(for: KernelRequest(name: kernel.name, source: kernel.source, architecture: .sm90a))
            }
        }
        #expect(compiler.count == 2)
    }

    @Test("the fixed mods compile", .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func compiles() throws {
        let nvrtc = try #require(CUDATestSupport.nvrtc)
        let cache = KernelCache(compiler: nvrtc, root: nil)
        for kernel in [ModGridKernel(mask: mask.fixingBatch(2), label: "packed_window"),
                       ModGridKernel(scoreMod: scoreMod.fixingBatch(2), label: "packed_slope")] {
            let (cubin, _) = try cache.cubin(
                for: KernelRequest(name: kernel.name, source: kernel.source, architecture: .sm80))
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(kernel.name) is not ELF")
        }
    }
}
