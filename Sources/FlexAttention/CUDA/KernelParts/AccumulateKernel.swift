/// `target = source` or `target += source` over a `[n0, n1, n2, n3]` view, each side through its own strides and dtype
/// code (``CUDAElementAccess``), added in Float32: how context parallelism sums gradient pieces into Float32
/// accumulators and writes the accumulated result out in the caller's dtype and layout. A warp per row of the last
/// axis, so that the index arithmetic is paid once a row.
struct AccumulateKernel: GeneratedKernel {
    static let threads = 256
    static let rowsPerBlock = threads / 32

    var name: String { "fa_accumulate" }

    /// `S, ss0…3, Sdtype, T, ts0…3, Tdtype, n0…3, rows, adding`.
    static let signature: KernelSignature<AccumulateOperands> = {
        typealias P = KernelParameter<AccumulateOperands>
        return KernelSignature(
            [P.pointer("S", "void", restricted: false) { $0.source.address }] + P.strides("ss") { $0.source.strides }
                + [.int32("Sdtype") { $0.sourceDType.mergeCode },
                   .pointer("T", "void", readOnly: false, restricted: false) { $0.target.address }]
                + P.strides("ts") { $0.target.strides }
                + [.int32("Tdtype") { $0.targetDType.mergeCode }]
                + (0..<4).map { axis in P.int64("n\(axis)") { $0.shape[axis] } }
                + [.int64("rows") { $0.shape.dropLast().reduce(1, *) }, .int32("adding") { $0.adding ? 1 : 0 }])
    }()

    var source: String {
        CUDAPrelude.source + CUDAElementAccess.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature.declaration)) {
                for (long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32; row < rows;
                     row += (long long)gridDim.x * \(Self.rowsPerBlock)) {
                    const long long x2 = row % n2, x1 = row / n2 % n1, x0 = row / (n2 * n1);
                    const long long s = x0 * ss0 + x1 * ss1 + x2 * ss2, t = x0 * ts0 + x1 * ts1 + x2 * ts2;
                    for (long long x3 = threadIdx.x % 32; x3 < n3; x3 += 32) {
                        const float value = fa_load_element(S, s + x3 * ss3, Sdtype);
                        fa_store_element(T, t + x3 * ts3, Tdtype,
                                         adding ? fa_load_element(T, t + x3 * ts3, Tdtype) + value : value);
                    }
                }
            }

            """
    }

    /// A grid that covers `rows` rows, capped (the loop strides over the rest).
    static func blocks(_ rows: Int) -> Int { max(1, min((rows + rowsPerBlock - 1) / rowsPerBlock, 65_536)) }
}

/// An ``AccumulateKernel`` launch's operands: two views of one 4-axis shape.
struct AccumulateOperands {
    var source: TensorOperand
    var sourceDType: DType
    var target: TensorOperand
    var targetDType: DType
    var shape: [Int]
    var adding: Bool
}

extension DeviceTensor {
    /// Queues `self = source` (or `self += source` when `adding`), element by element in Float32, on `stream`: any
    /// dtypes and strides, one 4-axis shape.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` for shapes that differ or are not 4-axis, tensors on another
    ///   device than `stream`; ``CUDAError`` when the launch fails.
    func accumulate(_ source: DeviceTensor, adding: Bool, on stream: CUDAStream) throws {
        guard source.shape == shape, shape.count == 4, source.buffer.device === stream.device,
              buffer.device === stream.device
        else {
            throw CUDAError.invalidArgument(
                "cannot accumulate a \(source.shape) tensor into a \(shape) one (4 axes, one shape, the stream's device)")
        }
        try LoadedKernel(
            function: try AttentionPlan.processCache.get().function(for: AccumulateKernel(), on: stream.device),
            signature: AccumulateKernel.signature, grid: (AccumulateKernel.blocks(shape.dropLast().reduce(1, *)), 1, 1),
            block: AccumulateKernel.threads
        ).enqueue(
            AccumulateOperands(
                source: TensorOperand(source), sourceDType: source.dtype, target: TensorOperand(self),
                targetDType: dtype, shape: shape, adding: adding),
            on: stream)
    }
}
