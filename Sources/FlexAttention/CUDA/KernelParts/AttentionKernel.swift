/// A generated attention kernel together with how it is launched: the programs (``ForwardProgram``,
/// ``BackwardProgram``) pick one kernel family per call (tensor cores for 16-bit inputs with head dims that are
/// multiples of 16, CUDA cores otherwise) and drive them all alike.
///
/// Every attention kernel of one role takes the same parameter list, so the launcher builds one argument list
/// whatever the family; the block list it uploads uses the kernel's own ``queryBlock`` and ``keyBlock``.
protocol AttentionKernel: GeneratedKernel {
    /// The inputs' element type.
    var dtype: DType { get }
    /// The mask emitted into the kernel, applied in partial blocks; nil when every score is kept.
    var mask: CUDAModFunction? { get }
    /// The score mod emitted into the kernel; nil for plain scores.
    var scoreMod: CUDAModFunction? { get }
    /// Threads per CTA (one dimension).
    var threads: Int { get }
    /// Dynamic shared memory per CTA, in bytes.
    var sharedMemoryBytes: Int { get }
    /// Query rows per block-mask block.
    var queryBlock: Int { get }
    /// Keys per block-mask block.
    var keyBlock: Int { get }
    /// Whether the kernel reads its operands through TMA tensor maps, which the launcher passes first (one per
    /// operand, boxes of ``queryBlock`` rows for Q and dO and ``keyBlock`` rows for K and V).
    var readsTensorMaps: Bool { get }
}

extension AttentionKernel {
    var readsTensorMaps: Bool { false }
}

/// A forward kernel of any family: its parameters are ``AttentionSignatures/forward(storage:tensorMaps:mask:scoreMod:)``.
protocol ForwardAttentionKernel: AttentionKernel {
    /// Rows of queries per tile.
    var queryBlock: Int { get }
    /// The launch grid for `shape` on a device with `multiprocessors` SMs.
    func grid(_ shape: AttentionShape, multiprocessors: Int) -> (x: Int, y: Int)
    /// Whether the kernel takes its tiles from `tileCounter`, which must then be zeroed before each launch.
    var schedulesTiles: Bool { get }
}

extension ForwardAttentionKernel {
    var schedulesTiles: Bool { false }

    /// A CTA per tile: heads along x, query blocks along y. CTAs start in x order, so every head's longest query
    /// blocks (the last, under causal: the kernels walk y backwards) go first and the short ones fill the tail.
    func grid(_ shape: AttentionShape, multiprocessors: Int) -> (x: Int, y: Int) {
        (shape.batch * shape.queryHeads, queryBlocks(shape))
    }

    /// Query blocks (tiles per head) of `shape`.
    func queryBlocks(_ shape: AttentionShape) -> Int { (shape.queryLength + queryBlock - 1) / queryBlock }

    var signature: KernelSignature<ForwardOperands> {
        AttentionSignatures.forward(
            storage: dtype.cudaStorageType, tensorMaps: readsTensorMaps, mask: mask != nil, scoreMod: scoreMod != nil)
    }
}

/// A dK/dV or dQ kernel of any family: its parameters are
/// ``AttentionSignatures/gradient(storage:tensorMaps:blockRows:gradients:mask:scoreMod:tableGradients:)``.
protocol GradientAttentionKernel: AttentionKernel {
    /// The gradients it writes, as its parameters name them: `dK`, `dV` or `dQ`.
    var gradientNames: [String] { get }
    /// Whether it reads ``DeltaKernel``'s per-block LSE and Delta.
    var readsBlockRows: Bool { get }
    /// Whether it also adds dQ to ``QueryGradientSums`` (the fused Hopper backward), so no dQ kernel runs.
    var sumsQueryGradient: Bool { get }
}

extension GradientAttentionKernel {
    var readsBlockRows: Bool { false }
    var sumsQueryGradient: Bool { false }

    /// Whether it sums the score mod's Float tables' gradients (the kernels that compute dQ do, when there are any).
    var computesTableGradients: Bool {
        (gradientNames == ["dQ"] || sumsQueryGradient) && scoreMod?.tableGradientDefinition != nil
    }

    var signature: KernelSignature<GradientOperands> {
        AttentionSignatures.gradient(
            storage: dtype.cudaStorageType, tensorMaps: readsTensorMaps, blockRows: readsBlockRows,
            gradients: gradientNames, queryGradientSums: sumsQueryGradient, mask: mask != nil, scoreMod: scoreMod != nil,
            tableGradients: computesTableGradients)
    }
}

/// A tensor-core attention kernel: 16-bit inputs, its K/V (or Q/dO) tiles in `stages` shared buffers, mods
/// emitted with the fast transcendentals.
protocol TensorCoreAttentionKernel: AttentionKernel {
    var stages: Int { get set }
    var maxStages: Int { get }
}

extension TensorCoreAttentionKernel {
    /// The most shared buffers the kernel's pipeline uses.
    var maxStages: Int { 2 }

    /// This kernel with as many stages (at most ``maxStages``) as `maxSharedMemory` bytes per block allow; an A100
    /// fits only one at D = Dv = 256.
    func fitting(maxSharedMemory: Int) -> Self {
        var kernel = self
        kernel.stages = maxStages
        while kernel.stages > 1 && kernel.sharedMemoryBytes > maxSharedMemory { kernel.stages -= 1 }
        return kernel
    }

    /// A forward kernel's score in base 2 from `raw` (the unscaled q·k of `query`, `key`): without a score mod the
    /// scale and log2(e) are one multiplication.
    func forwardScore(_ raw: String) -> String {
        scoreMod == nil
            ? "\(raw) * scaleLog2"
            : "fa_score_mod(\(raw) * scale, b, h, query, key, Sq, Skv, score_mod, nullptr) * LOG2E"
    }

    /// A forward kernel's last statements for one of this thread's rows, inside a loop over them (`continue` skips
    /// rows past `Sq`): the row's four partial sums added, O written from the accumulator tiles `accumulator`
    /// (element pair `2 * r`) over the sum, and the natural-log LSE from the base-2 `maximum`.
    func outputRow(sum: String, maximum: String, query: String, accumulator: String) -> String {
        """
        float sum = \(sum);
                        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                        const int query = \(query);
                        if (query >= Sq) continue;
                        const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
                        fa_u16* out = O + b * os0 + h * os1 + query * os2;
                        if (os3 == 1 && ((unsigned long long)out & 3) == 0) {  // a row of pairs: one 32-bit store each
                            #pragma unroll
                            for (int j = 0; j < DV / 8; ++j)
                                *(fa_u32*)(out + 8 * j + 2 * (lane % 4)) =
                                    fa_pack(\(accumulator)[j][2 * r] * inverse, \(accumulator)[j][2 * r + 1] * inverse);
                        } else {
                            #pragma unroll
                            for (int j = 0; j < DV / 8; ++j) {
                                const int column = 8 * j + 2 * (lane % 4);
                                out[column * os3] = \(dtype.cudaFromFloat("\(accumulator)[j][2 * r] * inverse"));
                                out[(column + 1) * os3] = \(dtype.cudaFromFloat("\(accumulator)[j][2 * r + 1] * inverse"));
                            }
                        }
                        if (lane % 4 == 0) {
                            LSE[((long long)b * Hq + h) * Sq + query] =
                                fa_log_sum_exp(\(maximum), sum);
                        }
        """
    }

    /// Everything a kernel body needs before it: the preludes, the tensor-core helpers, the mods, the tile loader.
    var prelude: String {
        CUDAModPrelude.fastModsDefine + CUDAPrelude.source + CUDAModPrelude.source + TensorCoreHelpers.source(dtype)
            + (mask?.definition ?? "") + (scoreMod?.definition ?? "") + SharedTileLoader.source
    }
}

/// The part of a kernel's name that tells its mods apart: a hash of each one's emitted definition.
enum ModTags {
    static func suffix(mask: CUDAModFunction?, scoreMod: CUDAModFunction?) -> String {
        func tag(_ mod: CUDAModFunction?, _ letter: String) -> String {
            mod.map { "_\(letter)" + hexString(SHA256.hash(Array($0.definition.utf8))).prefix(12) } ?? ""
        }
        return tag(mask, "m") + tag(scoreMod, "s")
    }
}
