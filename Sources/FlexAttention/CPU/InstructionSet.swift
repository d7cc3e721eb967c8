import FlexAttentionAVX512
import FlexAttentionSIMD

#if canImport(Glibc)
import Glibc
#endif

/// The CPU vector code paths, chosen from what the CPU reports.
///
/// The portable path (AVX2 + FMA on x86-64, NEON on aarch64) can be forced on any machine, so both paths can be
/// tested and timed on one CPU: for the process with `FLEXATTENTION_CPU_KERNELS=baseline`, or for the work
/// started in a task with `InstructionSet.$preferred.withValue(.baseline) { … }`. Asking for AVX-512 where the
/// CPU lacks it gives the baseline.
public enum InstructionSet: String, Sendable, CaseIterable {
    /// x86-64-v3 (AVX2, FMA, F16C) or aarch64 NEON.
    case baseline
    /// x86-64-v4 (AVX-512 F, BW, DQ, VL).
    case avx512

    /// The path the CPU work started in this task uses.
    public static var current: InstructionSet {
        guard let preferred else { return detected }
        return preferred == .avx512 && cpuSupportsAVX512 ? .avx512 : .baseline
    }

    /// A path to use for the CPU work started in this task, instead of the detected one.
    @TaskLocal public static var preferred: InstructionSet?

    /// The best path this CPU supports, unless `FLEXATTENTION_CPU_KERNELS=baseline` asks for the portable one.
    public static let detected: InstructionSet = {
        if getenv("FLEXATTENTION_CPU_KERNELS").map({ String(cString: $0) }) == "baseline" { return .baseline }
        return cpuSupportsAVX512 ? .avx512 : .baseline
    }()

    static let cpuSupportsAVX512: Bool = {
        #if arch(x86_64)
        guard let bytes = FileSystem.read("/proc/cpuinfo") else { return false }
        let cpuinfo = String(decoding: bytes, as: UTF8.self)
        guard let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            return false
        }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        #else
        return false
        #endif
    }()

    /// Calls `body` with the kernels of this path.
    func withKernels<R>(_ body: (any TileKernels.Type) throws -> R) rethrows -> R {
        switch self {
        case .baseline: try body(BaselineTileKernels.self)
        case .avx512: try body(AVX512TileKernels.self)
        }
    }
}

/// ``TileKernels`` for the portable baseline, compiled with this module's flags.
enum BaselineTileKernels: TileKernels {
    /// Rows of two 8-lane vectors: 4 × 2 AVX2 registers or 4 × 4 NEON registers of accumulators, no spills.
    static func perform(_ operation: TileOperation) {
        SIMDTileKernels<TwoVectors<SIMD8<Float>>, TwoVectors<SIMD8<Float>>, TwoVectors<SIMD8<Float>>>
            .perform(operation)
    }
}
