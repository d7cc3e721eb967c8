/// The GPU conformance suite behind `flexattn check --device cuda`: memory round trips, then generated kernels
/// checked element by element against the CPU.
public struct CUDAConformance: Sendable {
    /// The outcome of one check.
    public struct Result: Sendable {
        public var name: String
        /// Nil when it passed; else what differed or failed.
        public var failure: String?
    }

    public let device: CUDADevice
    public let cache: KernelCache
    let seed: UInt64

    public init(device: CUDADevice, cache: KernelCache, seed: UInt64 = 0x5eed) {
        self.device = device
        self.cache = cache
        self.seed = seed
    }

    /// Runs every check, reporting each as it finishes.
    public func run(report: (Result) -> Void = { _ in }) -> [Result] {
        var generator = SplitMix64(seed: seed)
        var results = [Result]()
        let checks: [(String, (inout SplitMix64) throws -> String?)] =
            memoryChecks() + kernelChecks() + modGridChecks() + forwardChecks()
        for (name, check) in checks {
            let result: Result
            do {
                result = Result(name: name, failure: try check(&generator))
            } catch {
                result = Result(name: name, failure: "\(error)")
            }
            report(result)
            results.append(result)
        }
        return results
    }
}

/// A small, fast, seedable generator so a failing check can be replayed with the same data.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
