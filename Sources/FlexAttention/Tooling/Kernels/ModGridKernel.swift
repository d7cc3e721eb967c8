/// A kernel that evaluates one emitted mod at every point of a `[B, H, Q, KV]` grid: the GPU half of checking the
/// CUDA emitter against the CPU tile evaluators.
///
/// Parameters: ``signature``. Masks write 1 or 0; score mods write the modified score and ∂/∂score to `slopes`. One thread per element:
/// `blockIdx.y` walks `b·H·Q + h·Q + q` rows, `x` covers `kv`; `q_len` is Q and `kv_len` is KV.
struct ModGridKernel: GeneratedKernel {
    let mod: CUDAModFunction
    /// The mod emitted, for the CPU side of the check.
    let mask: MaskMod?
    let scoreMod: ScoreMod?
    /// Identifier-safe label, part of the kernel name (for example `sliding_window`).
    let label: String
    static let threadsPerBlock = 128

    init(mask: MaskMod, label: String) {
        mod = CUDAModFunction(mask: mask)
        (self.mask, scoreMod) = (mask, nil)
        self.label = label
    }

    init(scoreMod: ScoreMod, label: String) {
        mod = CUDAModFunction(scoreMod: scoreMod)
        (mask, self.scoreMod) = (nil, scoreMod)
        self.label = label
    }

    var name: String { "fa_grid_\(mod.kind)_\(label)" }

    /// `out, slopes, scores, B, H, Q, KV`, then the mod's three argument arrays.
    static let signature = KernelSignature<ModGridOperands>([
        .pointer("out", "float", readOnly: false) { $0.output }, .pointer("slopes", "float", readOnly: false) { $0.slopes },
        .pointer("scores", "float") { $0.scores }, .int32("B") { $0.grid[0] }, .int32("H") { $0.grid[1] },
        .int32("Q") { $0.grid[2] }, .int32("KV") { $0.grid[3] },
        .pointer("ints", "long long", restricted: false) { $0.mod.ints },
        .pointer("floats", "float", restricted: false) { $0.mod.floats },
        .pointer("tables", "fa_u64", restricted: false) { $0.mod.tables },
    ])

    var source: String {
        let value = switch mod.kind {
        case .mask: "\(mod.name)(b, h, q, kv, Q, KV, m) ? 1.0f : 0.0f"
        case .score: "\(mod.name)(scores[element], b, h, q, kv, Q, KV, m, &slope)"
        }
        return CUDAPrelude.source + CUDAModPrelude.source + mod.definition + """
            extern "C" __global__ void __launch_bounds__(\(Self.threadsPerBlock))
            \(name)(\(Self.signature.declaration)) {
                const int kv = blockIdx.x * blockDim.x + threadIdx.x;
                const long long row = blockIdx.y;
                if (kv >= KV || row >= (long long)B * H * Q) return;
                const int q = (int)(row % Q);
                const int h = (int)(row / Q % H);
                const int b = (int)(row / ((long long)Q * H));
                const long long element = row * KV + kv;
                const \(mod.name)_prepared m = \(mod.name)_prepare(b, h, Q, KV, {ints, floats, tables});
                float slope = 0.0f;
                out[element] = \(value);
                slopes[element] = slope;
            }

            """
    }
}

/// A ``ModGridKernel`` launch's operands.
struct ModGridOperands {
    var output: UInt64
    var slopes: UInt64
    var scores: UInt64
    /// `[B, H, Q, KV]`.
    var grid: [Int]
    var mod: ModOperands
}
