import FlexAttention
import Testing

/// Whether the optional pieces are here, for `.enabled(if:)` traits that say why a test is skipped.
enum CUDATestSupport {
    static let nvrtc: NVRTC? = try? NVRTC()
    static let device: CUDADevice? = CUDADriver.isAvailable ? try? CUDADevice.open(0) : nil

    static let noNVRTCReason: Comment =
        "NVRTC not found: run scripts/install-nvrtc.sh (or set FLEXATTENTION_NVRTC) to compile kernels without a GPU"
    static let noGPUReason: Comment = "no CUDA GPU on this machine"

    /// A fresh, empty folder under /tmp.
    static func temporaryDirectory() -> String {
        "/tmp/flexattention-test-\(UInt64.random(in: 0...UInt64.max))"
    }
}
