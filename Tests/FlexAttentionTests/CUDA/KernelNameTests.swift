import Testing
@testable import FlexAttention

/// The kernel cache finds a loaded kernel by its name alone, so a name must determine the whole source.
@Suite("Kernel names")
struct KernelNameTests {
    @Test func aNameDeterminesItsSource() throws {
        // The catalog, plus kernels whose mods differ only in values (one name, one source) or in being
        // differentiated (two names).
        let window = { (size: Int, cap: Float, gradients: Bool) in
            MMAForwardKernel(dtype: .bfloat16, headDim: 64, valueDim: 64,
                          mask: CUDAModFunction(mask: .causal && .slidingWindow(size)),
                          scoreMod: CUDAModFunction(scoreMod: .softCap(cap), includesGradients: gradients))
        }
        let variants: [any GeneratedKernel] = [window(256, 30, false), window(100, 5, false), window(100, 5, true)]
        var sources: [String: String] = [:]
        for kernel in try KernelCatalog.kernels() + variants {
            let source = kernel.source
            if let known = sources.updateValue(source, forKey: kernel.name) {
                #expect(known == source, "\(kernel.name) names two sources")
            }
        }
        #expect(window(256, 30, false).name == window(100, 5, false).name)
        #expect(window(100, 5, false).name != window(100, 5, true).name)
    }
}
