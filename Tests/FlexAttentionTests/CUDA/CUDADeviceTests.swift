import Testing
@testable import FlexAttention

@Suite("CUDA device")
struct CUDADeviceTests {
    @Test(
        "the conformance suite passes on device 0",
        .enabled(if: CUDATestSupport.device != nil, CUDATestSupport.noGPUReason),
        .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func conformance() throws {
        let device = try #require(CUDATestSupport.device)
        let cache = KernelCache(compiler: try #require(CUDATestSupport.nvrtc), root: CUDATestSupport.temporaryDirectory())
        let failures = CUDAConformance(device: device, cache: cache).run().filter { $0.failure != nil }
        #expect(failures.isEmpty, "\(failures.map { "\($0.name): \($0.failure ?? "")" })")
    }

    @Test("a missing driver is reported as an error, not a crash", .enabled(if: CUDATestSupport.device == nil, "a GPU is present"))
    func noDriver() {
        #expect(throws: CUDAError.self) { try CUDADevice.open(0) }
    }
}
