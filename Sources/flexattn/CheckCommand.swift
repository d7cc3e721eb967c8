import ArgumentParser
import FlexAttention

extension Flexattn {
    struct Check: ParsableCommand {
        static let usage = "flexattn check --device cuda[:N] [--seed S] [--filter TEXT]"
        static let configuration = CommandConfiguration(
            abstract: "Checks a GPU against the CPU: one line per check, then the counts; exits 1 when any failed.",
            usage: usage)

        @Option(parsing: .unconditional, help: ArgumentHelp("The GPU to check.", valueName: "cuda[:N]"))
        var device: String
        @Option(parsing: .unconditional, help: ArgumentHelp("The seed of the random inputs.", valueName: "S"))
        var seed: UInt64 = 0x5eed
        @Option(parsing: .unconditional,
                help: ArgumentHelp("Run only the checks whose names contain TEXT.", valueName: "TEXT"))
        var filter: String?

        func run() throws {
            let status = try runCheck(ordinal: try parseCUDAOrdinal(device), seed: seed, filter: filter)
            if status != 0 { throw ExitCode(status) }
        }
    }
}

/// `flexattn check --device cuda[:N] [--seed S] [--filter TEXT]`: the GPU conformance suite (the checks whose names
/// contain TEXT). Prints one line per check, then `N passed, M failed`; exits 1 when any check failed.
func runCheck(ordinal: Int, seed: UInt64, filter: String?) throws -> Int32 {
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
