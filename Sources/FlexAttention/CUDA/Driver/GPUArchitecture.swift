/// A compilation target: a compute capability, optionally with its architecture-specific features (`sm_90a`
/// enables Hopper's wgmma and setmaxnreg; such a cubin runs only on that exact capability).
public struct GPUArchitecture: Sendable, Hashable, CustomStringConvertible {
    /// The compute capability's major version (9 for Hopper).
    public var major: Int
    /// The compute capability's minor version.
    public var minor: Int
    /// Whether the target has the `a` suffix: the exact chip's features, no forward compatibility.
    public var architectureSpecific: Bool

    /// A target of compute capability `major.minor`, with the `a` suffix when `architectureSpecific`.
    public init(major: Int, minor: Int, architectureSpecific: Bool = false) {
        self.major = major
        self.minor = minor
        self.architectureSpecific = architectureSpecific
    }

    /// Parses `sm_90a`, `sm_80`, `90a`, `8.0`.
    public init(parsing text: String) throws {
        var digits = Substring((text.hasPrefix("sm_") ? String(text.dropFirst(3)) : text).filter { $0 != "." })
        let specific = digits.hasSuffix("a")
        if specific { digits = digits.dropLast() }
        guard digits.count >= 2, let value = Int(digits) else {
            throw CUDAError.invalidArgument("'\(text)' is not a GPU architecture such as sm_90a or sm_80")
        }
        self.init(major: value / 10, minor: value % 10, architectureSpecific: specific)
    }

    /// The best target for a device of this capability: the architecture-specific one where it has one
    /// (Hopper, Blackwell), so generated kernels can use every instruction the chip has.
    public static func native(major: Int, minor: Int) -> GPUArchitecture {
        GPUArchitecture(major: major, minor: minor, architectureSpecific: major >= 9)
    }

    /// `sm_80`: the A100.
    public static let sm80 = GPUArchitecture(major: 8, minor: 0)
    /// `sm_90a`: the H100 with its Hopper-only instructions.
    public static let sm90a = GPUArchitecture(major: 9, minor: 0, architectureSpecific: true)

    /// `sm_90a`.
    public var description: String { "sm_\(major)\(minor)\(architectureSpecific ? "a" : "")" }
}
