/// Where attention runs.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    /// The host CPU, on all cores. Always available.
    case cpu
    /// An NVIDIA GPU, by CUDA device ordinal.
    case cuda(Int)

    /// `cpu` or `cuda:N`.
    public var description: String {
        switch self {
        case .cpu: "cpu"
        case let .cuda(ordinal): "cuda:\(ordinal)"
        }
    }
}
