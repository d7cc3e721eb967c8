import Testing
@testable import FlexAttention

@Suite("CUDA NVRTC compilation")
struct CUDANVRTCTests {
    @Test(
        "every generated kernel compiles for sm_90a and, unless it is Hopper-only, sm_80",
        .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func compilesEveryVariant() throws {
        let nvrtc = try #require(CUDATestSupport.nvrtc)
        let cache = KernelCache(compiler: nvrtc, root: nil)
        for architecture in KernelCatalog.ciArchitectures {
            for kernel in try KernelCatalog.kernels() where kernel.compiles(for: architecture) {
                let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: architecture)
                let (cubin, origin) = try cache.cubin(for: request)
                #expect(origin == .compiled)
                #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(kernel.name) for \(architecture) is not ELF")
            }
        }
    }

    @Test(
        "a compile error carries NVRTC's log and the numbered source",
        .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func compileErrorShowsLog() throws {
        let nvrtc = try #require(CUDATestSupport.nvrtc)
        let source = "extern \"C\" __global__ void broken() {\n  undefined_name = 1;\n}\n"
        do {
            _ = try nvrtc.compile(source: source, name: "broken", options: ["--gpu-architecture=sm_80"])
            Issue.record("expected a compilation error")
        } catch let CUDAError.compilation(kernel, log, numbered) {
            #expect(kernel == "broken")
            #expect(log.contains("undefined_name"))
            #expect(numbered.contains("2    undefined_name = 1;"))
        }
    }

    @Test("NVRTC's version is 12 or later", .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func version() throws {
        let nvrtc = try #require(CUDATestSupport.nvrtc)
        #expect(nvrtc.version.major >= 12)
        #expect(nvrtc.versionTag.hasPrefix("nvrtc-"))
    }
}
