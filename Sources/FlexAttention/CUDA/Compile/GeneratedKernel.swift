/// A kernel generated as CUDA C++: its `extern "C"` name and complete, header-free translation unit. The same
/// inputs always give the same bytes, so cache keys are stable.
package protocol GeneratedKernel: Sendable {
    var name: String { get }
    var source: String { get }
    /// Whether the kernel is meant for `architecture` (Hopper kernels use sm_90a's own instructions).
    func compiles(for architecture: GPUArchitecture) -> Bool
}

extension GeneratedKernel {
    package func compiles(for architecture: GPUArchitecture) -> Bool { true }
}
