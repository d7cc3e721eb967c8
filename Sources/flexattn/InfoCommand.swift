import ArgumentParser
import FlexAttention

extension Flexattn {
    struct Info: ParsableCommand {
        static let usage = "flexattn info"
        static let configuration = CommandConfiguration(
            abstract: "Reports the CUDA driver, devices, NVRTC and kernel cache this process would use.", usage: usage)

        func run() { runInfo() }
    }
}

/// `flexattn info`: the CUDA driver, devices, NVRTC and kernel cache this process would use. Missing pieces are
/// reported, not errors: the exit status is 0 whenever the report was printed.
func runInfo() {
    do {
        let version = try CUDADriver.version()
        print("CUDA driver: \(try CUDADriver.libraryPath()) (CUDA \(version.major).\(version.minor))")
        let count = try CUDADriver.deviceCount()
        print("devices: \(count)")
        for ordinal in 0..<count {
            let device = try CUDADevice.open(ordinal)
            let capability = device.computeCapability
            print("  cuda:\(ordinal)  \(device.name)  compute \(capability.major).\(capability.minor)"
                + " (\(device.architecture))  \(device.multiprocessorCount) SMs"
                + "  \(gibibytes(device.totalMemory)) GiB"
                + "  shared memory/block \(device.maxSharedMemoryPerBlockOptIn / 1024) KiB"
                + "  L2 \(device.l2CacheSize / (1 << 20)) MiB")
        }
    } catch {
        print("CUDA driver: not available: \(error)")
    }
    do {
        let nvrtc = try NVRTC()
        print("NVRTC: \(nvrtc.libraryPath) (\(nvrtc.version.major).\(nvrtc.version.minor))")
    } catch {
        print("NVRTC: not available: \(error)")
    }
    print("kernel cache: \(KernelCacheLocation.current)/kernels")
}

private func gibibytes(_ bytes: Int) -> String {
    let tenths = bytes * 10 / (1 << 30)
    return "\(tenths / 10).\(tenths % 10)"
}
