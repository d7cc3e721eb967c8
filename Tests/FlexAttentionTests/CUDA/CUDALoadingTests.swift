import Testing
@testable import FlexAttention

@Suite("CUDA library search and source generation")
struct CUDALoadingTests {
    @Test("a missing library is a typed error listing every place searched")
    func missingLibrary() {
        let candidates = [
            LibraryCandidate(path: "/nonexistent/libnvrtc.so.13", origin: "FLEXATTENTION_NVRTC"),
            LibraryCandidate(path: "libnot-a-real-library.so.99", origin: "system loader"),
        ]
        #expect {
            try DynamicLibrary.openFirst(candidates, library: "NVRTC")
        } throws: { error in
            guard case let CUDAError.libraryNotFound(library, searched) = error else { return false }
            return library == "NVRTC" && searched.count == 2 && searched[0].contains("/nonexistent/libnvrtc.so.13")
                && searched[1].contains("system loader")
        }
    }

    @Test("the environment variables come first, the system loader last")
    func searchOrder() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories("\(root)/cuda/lib64")
        let environment = ["FLEXATTENTION_NVRTC": "/custom/libnvrtc.so.13", "CUDA_HOME": "\(root)/cuda", "HOME": root]
        let candidates = LibrarySearch.nvrtcCandidates(environment: environment)
        #expect(candidates.first?.path == "/custom/libnvrtc.so.13")
        #expect(candidates.dropFirst().first?.path == "\(root)/cuda/lib64/libnvrtc.so.13")
        #expect(candidates.last?.origin == "system loader")
        #expect(LibrarySearch.driverCandidates(environment: [:]).first?.path == "libcuda.so.1")
    }

    @Test("an NVRTC folder preloads its builtins library by full path")
    func preloadsBuiltins() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories(root)
        try FileSystem.writeAtomically([], to: "\(root)/libnvrtc-builtins.so.13.0")
        let candidates = LibrarySearch.nvrtcCandidates(environment: ["FLEXATTENTION_NVRTC": root])
        #expect(candidates.first?.path == "\(root)/libnvrtc.so.13")
        #expect(candidates.first?.preload == ["\(root)/libnvrtc-builtins.so.13.0"])
    }

    @Test("architectures parse and print")
    func architectures() throws {
        #expect(try GPUArchitecture(parsing: "sm_90a") == .sm90a)
        #expect(try GPUArchitecture(parsing: "8.0") == .sm80)
        #expect(GPUArchitecture.native(major: 9, minor: 0).description == "sm_90a")
        #expect(throws: CUDAError.self) { try GPUArchitecture(parsing: "hopper") }
    }

    @Test("generated sources are deterministic and header-free")
    func sources() throws {
        let first = (try KernelCatalog.kernels()).map(\.source)
        #expect(first == (try KernelCatalog.kernels()).map(\.source))
        #expect(Set((try KernelCatalog.kernels()).map(\.name)).count == first.count)
        for source in first {
            #expect(!source.contains("#include"))
        }
    }
}
