/// The GPU conformance suite behind `flexattn check --device cuda`: memory round trips, generated kernels checked
/// element by element against the CPU, then streams and graphs.
package struct CUDAConformance: Sendable {
    /// The outcome of one check.
    package struct Result: Sendable {
        package var name: String
        /// Nil when it passed; else what differed or failed.
        package var failure: String?
    }

    package let device: CUDADevice
    package let cache: KernelCache
    let seed: UInt64

    package init(device: CUDADevice, cache: KernelCache, seed: UInt64 = 0x5eed) {
        self.device = device
        self.cache = cache
        self.seed = seed
    }

    /// Runs every check, reporting each as it finishes.
    /// - Parameter filter: runs only the checks whose names contain it (all when nil), for a sanitizer run on a
    ///   part of the suite.
    package func run(filter: String? = nil, report: (Result) -> Void = { _ in }) -> [Result] {
        var generator = SplitMix64(seed: seed)
        var results = [Result]()
        let checks: [(String, (inout SplitMix64) throws -> String?)] =
            memoryChecks() + kernelChecks() + modGridChecks() + forwardChecks() + backwardChecks() + attentionModChecks()
                + nonFiniteChecks() + modDomainChecks() + streamChecks() + planChecks() + packedSequenceChecks()
                + sinkChecks() + mergeChecks() + decodeChecks() + contextParallelChecks()
        for (name, check) in checks {
            if let filter, !name.contains(filter) { continue }
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
