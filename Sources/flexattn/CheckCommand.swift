import FlexAttention

/// `flexattn check --device cuda[:N] [--seed S] [--filter TEXT]`: the GPU conformance suite (the checks whose names
/// contain TEXT). Prints one line per check, then `N passed, M failed`; exits 1 when any check failed.
func runCheck(arguments: [String]) throws -> Int32 {
    let usage = "usage: flexattn check --device cuda[:N] [--seed S] [--filter TEXT]"
    var ordinal: Int?
    var seed: UInt64 = 0x5eed
    var filter: String?
    var remaining = arguments[...]
    while let option = remaining.popFirst() {
        switch (option, remaining.popFirst()) {
        case let ("--device", value?) where value == "cuda" || value.hasPrefix("cuda:"):
            guard let parsed = value == "cuda" ? 0 : Int(value.dropFirst(5)) else { throw CUDAError.invalidArgument(usage) }
            ordinal = parsed
        case let ("--filter", value?):
            filter = value
        case let ("--seed", value?):
            guard let parsed = UInt64(value) else { throw CUDAError.invalidArgument(usage) }
            seed = parsed
        default:
            throw CUDAError.invalidArgument(usage)
        }
    }
    guard let ordinal else { throw CUDAError.invalidArgument(usage) }

    let device = try CUDADevice.open(ordinal)
    let nvrtc = try NVRTC()
    print("device cuda:\(ordinal): \(device.name), \(device.architecture); NVRTC \(nvrtc.version.major).\(nvrtc.version.minor)")
    let cache = KernelCache(compiler: nvrtc)
    let results = CUDAConformance(device: device, cache: cache, seed: seed).run(filter: filter) { result in
        if let failure = result.failure {
            print("FAIL  \(result.name): \(failure)")
        } else {
            print("pass  \(result.name)")
        }
    }
    let failed = results.filter { $0.failure != nil }.count
    print("\(results.count - failed) passed, \(failed) failed")
    return failed == 0 ? 0 : 1
}
