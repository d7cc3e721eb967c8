extension ConversionKernel: GeneratedKernel {}
extension SharedMemoryProbeKernel: GeneratedKernel {}

/// Every kernel the library can generate today: what CI compiles for each architecture and what
/// `flexattn kernel-source` prints.
package enum KernelCatalog {
    /// - Throws: ``ModError`` only if a built-in sample mod fails to build (a bug).
    package static func kernels() throws -> [any GeneratedKernel] {
        var generator = SplitMix64(seed: 1)
        let grids: [any GeneratedKernel] = try ModSamples.gridKernels(compositions: 3, using: &generator)
        let conversions: [any GeneratedKernel] = [DType.float16, .bfloat16].map { ConversionKernel(dtype: $0) }
        let attention: [any GeneratedKernel] = forwardKernels + backwardKernels + (try scalarKernels())
        return grids + conversions + attention + logSumExpKernels + (try decodeKernels()) + [SharedMemoryProbeKernel()]
    }

    /// Forward kernels of each dtype over the head dims, plain, causal, and with a sliding window and soft-capping,
    /// and the single-stage kernel that devices with less shared memory get at D = Dv = 256.
    static var forwardKernels: [any GeneratedKernel] {
        let mods: [(mask: MaskMod?, scoreMod: ScoreMod?)] = [
            (nil, nil), (.causal, nil), (.causal && .slidingWindow(256), .softCap(30)),
        ]
        return [DType.float16, .bfloat16].flatMap { dtype in
            [(16, 16), (64, 64), (80, 80), (128, 128), (128, 64), (256, 256)].flatMap { d, dv in
                mods.map { mask, scoreMod in
                    MMAForwardKernel(
                        dtype: dtype, headDim: d, valueDim: dv, mask: mask.map { CUDAModFunction(mask: $0) },
                        scoreMod: scoreMod.map { CUDAModFunction(scoreMod: $0, includesGradients: false) })
                }
            }
        } + [MMAForwardKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil, stages: 1)]
            + hopperKernels
    }

    /// Hopper's wgmma/TMA forward and backward kernels over head dims that exercise padding (80, Dv ≠ D) and both
    /// key blocks (the backward where it runs: to 128, and the wide one above), plain and with mods (the backward's with a Float table,
    /// whose gradient it sums); the plain wide backward also adding dQ in any order.
    static var hopperKernels: [any GeneratedKernel] {
        let bias = try? ScoreMod.relativePositionBias(Array(repeating: 0.5, count: 2 * 63), heads: 2, maxDistance: 31)
        let cases = [(DType.bfloat16, 64, 64, false), (.bfloat16, 128, 128, false), (.bfloat16, 128, 128, true),
                     (.float16, 80, 80, true), (.bfloat16, 128, 64, false), (.bfloat16, 256, 256, false),
                     (.float16, 192, 192, true)]
        return cases.flatMap { dtype, d, dv, modded -> [any GeneratedKernel] in
            let mask = modded ? CUDAModFunction(mask: .causal && .slidingWindow(256)) : nil
            let orders = modded ? [true] : [true, false]  // the wide backward adding dQ in its turns, and in any order
            return [
                HopperForwardKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask,
                                    scoreMod: modded ? CUDAModFunction(scoreMod: .softCap(30), includesGradients: false) : nil)
                    .fitting(maxSharedMemory: 227 * 1024),
            ] + (d == 128 && dv == 128 && !modded ? [  // the kernel that scales before the softmax (a scale ≤ 0)
                HopperForwardKernel(dtype: dtype, headDim: d, valueDim: dv, mask: nil, scoreMod: nil, scaleIsPositive: false)
                    .fitting(maxSharedMemory: 227 * 1024),
            ] : []) + (d <= 128 && !modded ? [  // persistent, as for short walks (and always at D = 64)
                HopperForwardKernel(dtype: dtype, headDim: d, valueDim: dv, mask: nil, scoreMod: nil, persistent: true)
                    .fitting(maxSharedMemory: 227 * 1024),
            ] : []) + (HopperGradientKernel.supports(headDim: d, valueDim: dv) ? [
                HopperGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask,
                                     scoreMod: modded ? bias.map { CUDAModFunction(scoreMod: $0) } : nil)
                    .fitting(maxSharedMemory: 227 * 1024),
            ] : []) + (HopperWideGradientKernel.supports(headDim: d, valueDim: dv) ? orders.map { ordered in
                HopperWideGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask,
                                         scoreMod: modded ? bias.map { CUDAModFunction(scoreMod: $0) } : nil,
                                         ordersQueryGradient: ordered)
                    .fitting(maxSharedMemory: 227 * 1024)
            } : [])
        }
    }

    /// Delta (each dtype), dK/dV and dQ kernels, and the kernels that round the Hopper backward's dQ sums: bf16 at D = 64, 80, 128 (Dv = 64) and 256, fp16 at D = 64, each plain, causal
    /// with soft-capping, and a sliding window with a learnable bias table (which the dQ kernel differentiates); and
    /// the single-stage pair that devices with less shared memory get at D = Dv = 256.
    static var backwardKernels: [any GeneratedKernel] {
        let bias = try? ScoreMod.relativePositionBias(Array(repeating: 0.5, count: 2 * 63), heads: 2, maxDistance: 31)
        let mods: [(mask: MaskMod?, scoreMod: ScoreMod?)] = [(nil, nil), (.causal, .softCap(30)), (.slidingWindow(100), bias)]
        let variants = [(DType.bfloat16, 64, 64), (.bfloat16, 80, 80), (.bfloat16, 128, 64), (.bfloat16, 256, 256), (.float16, 64, 64)]
        func pair(_ dtype: DType, _ d: Int, _ dv: Int, _ mask: MaskMod?, _ scoreMod: ScoreMod?, stages: Int) -> [any GeneratedKernel] {
            let (maskFunction, scoreFunction) = (mask.map { CUDAModFunction(mask: $0) }, scoreMod.map { CUDAModFunction(scoreMod: $0) })
            return [MMAKeyValueGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: maskFunction, scoreMod: scoreFunction, stages: stages),
                    MMAQueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: maskFunction, scoreMod: scoreFunction, stages: stages)]
        }
        return [DType.bfloat16, .float16, .float32].map { DeltaKernel(dtype: $0) }
            + variants.flatMap { dtype, d, dv in mods.flatMap { pair(dtype, d, dv, $0.mask, $0.scoreMod, stages: 2) } }
            + pair(.bfloat16, 256, 256, nil, nil, stages: 1) + [TableGradientKernel()]
            + [DType.bfloat16, .float16].map { QueryGradientFinishKernel(dtype: $0) }
    }

    /// The kernels that merge rows by their log-sum-exps: the sinks' forward (each dtype) and gradient, and the merge
    /// of partial results; and the element-wise sum context parallelism accumulates with.
    static var logSumExpKernels: [any GeneratedKernel] {
        [DType.float32, .float16, .bfloat16].map { SinkForwardKernel(dtype: $0) }
            + [SinkGradientKernel(), MergeKernel(), AccumulateKernel()]
    }

    /// The CUDA-core family (forward, dK/dV, dQ) on representative cases: Float32 plain, causal with soft-capping,
    /// and with a Float-table score mod (relative-position bias); head dims the tensor cores do not take in each
    /// dtype; Float32 at D = 192 (8 warps in the backward) and 16-bit at D = Dv = 512.
    static func scalarKernels() throws -> [any GeneratedKernel] {
        let bias = try ScoreMod.relativePositionBias([Float](repeating: 0, count: 2 * 9), heads: 2, maxDistance: 4)
        let cases: [(dtype: DType, d: Int, dv: Int, mask: MaskMod?, scoreMod: ScoreMod?)] = [
            (.float32, 64, 64, nil, nil), (.float32, 64, 64, .causal, .softCap(30)), (.float32, 64, 64, .causal, bias),
            (.float16, 72, 72, .causal, nil), (.bfloat16, 8, 24, nil, nil), (.float32, 192, 192, .causal, nil),
            (.bfloat16, 512, 512, nil, nil),
        ]
        return cases.flatMap { dtype, d, dv, mask, scoreMod -> [any GeneratedKernel] in
            let (mask, scoreMod) = (mask.map { CUDAModFunction(mask: $0) }, scoreMod.map { CUDAModFunction(scoreMod: $0) })
            return [
                ScalarForwardKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod),
                ScalarKeyValueGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod),
                ScalarQueryGradientKernel(dtype: dtype, headDim: d, valueDim: dv, mask: mask, scoreMod: scoreMod),
            ]
        }
    }

    /// Decode kernels (tensor-core and CUDA-core, contiguous and paged, one and two row tiles, plain and with a
    /// window, soft-capping, ALiBi and a document table), the combine for each dtype, and the append kernels.
    static func decodeKernels() throws -> [any GeneratedKernel] {
        let window = CUDAModFunction(mask: .causal && .slidingWindow(256))
        let documents = CUDAModFunction(mask: try .documentCausal(ids: (0..<64).map { $0 / 16 }))
        let softCap = CUDAModFunction(scoreMod: .softCap(30), includesGradients: false)
        let alibi = CUDAModFunction(scoreMod: try .alibi(heads: 8), includesGradients: false)
        let cases: [(DType, Int, Int, Int, Bool, CUDAModFunction?, CUDAModFunction?)] = [
            (.bfloat16, 128, 128, 4, false, nil, nil), (.bfloat16, 128, 128, 4, true, nil, nil),
            (.bfloat16, 128, 128, 4, true, window, softCap), (.float16, 64, 64, 48, true, documents, alibi),
            (.bfloat16, 256, 256, 1, true, nil, nil), (.float16, 128, 64, 16, false, window, nil),
            (.float32, 128, 128, 4, false, nil, nil), (.float32, 64, 64, 32, true, window, alibi),
            (.bfloat16, 72, 72, 3, false, documents, softCap),
        ]
        let attention: [any GeneratedKernel] = cases.map { dtype, d, dv, rows, paged, mask, scoreMod in
            if dtype != .float32 && d % 16 == 0 && dv % 16 == 0 {
                return DecodeMMAKernel(dtype: dtype, headDim: d, valueDim: dv, rows: rows, isPaged: paged, mask: mask,
                                       scoreMod: scoreMod).fitting(maxSharedMemoryPerMultiprocessor: 228 * 1024)
            }
            return DecodeScalarKernel(dtype: dtype, headDim: d, valueDim: dv, rows: rows, isPaged: paged, mask: mask,
                                      scoreMod: scoreMod)
        }
        let combines: [any GeneratedKernel] = DType.allCases.map { DecodeCombineKernel(dtype: $0, valueDim: 128) }
            + [DecodeCombineKernel(dtype: .float16, valueDim: 70)]
        let appends: [any GeneratedKernel] = [(DType.bfloat16, DType.bfloat16), (.float16, .float32), (.float32, .float32)]
            .flatMap { dtype, input in [false, true].map { KVAppendKernel(dtype: dtype, input: input, isPaged: $0) } }
        return attention + combines + appends
    }

    /// The architectures CI compiles for: Hopper with its specific features, and Ampere.
    package static let ciArchitectures: [GPUArchitecture] = [.sm90a, .sm80]
}
