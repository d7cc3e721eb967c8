/// A kernel generated as CUDA C++: its `extern "C"` name and complete, header-free translation unit. The same
/// inputs always give the same bytes, so cache keys are stable.
public protocol GeneratedKernel: Sendable {
    var name: String { get }
    var source: String { get }
}

extension ConversionKernel: GeneratedKernel {}
extension SharedMemoryProbeKernel: GeneratedKernel {}

/// Every kernel the library can generate today: what CI compiles for each architecture and what
/// `flexattn kernel-source` prints.
public enum KernelCatalog {
    /// - Throws: ``ModError`` only if a built-in sample mod fails to build (a bug).
    public static func kernels() throws -> [any GeneratedKernel] {
        var generator = SplitMix64(seed: 1)
        let grids: [any GeneratedKernel] = try ModSamples.gridKernels(compositions: 3, using: &generator)
        let conversions: [any GeneratedKernel] = [DType.float16, .bfloat16].map { ConversionKernel(dtype: $0) }
        return grids + conversions + [SharedMemoryProbeKernel()]
    }

    /// The architectures CI compiles for: Hopper with its specific features, and Ampere.
    public static let ciArchitectures: [GPUArchitecture] = [.sm90a, .sm80]
}
