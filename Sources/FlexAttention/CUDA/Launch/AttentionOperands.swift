/// What the attention kernels read, as plain numbers: a launcher fills these from device tensors, and tests build
/// them without a GPU to check every kernel's arguments against its signature.

/// A `[B, H, S, D]` operand: its first element's address and its four strides, in elements.
struct TensorOperand {
    var address: UInt64
    var strides: [Int]

    init(address: UInt64, strides: [Int]) {
        self.address = address
        self.strides = strides
    }

    init(_ tensor: DeviceTensor) {
        self.init(address: tensor.address, strides: tensor.strides)
    }
}

/// The sizes and scale every attention kernel reads.
struct AttentionSizes {
    var batch: Int
    var queryHeads: Int
    var keyValueHeads: Int
    var queryLength: Int
    var keyLength: Int
    var scale: Float

    init(_ shape: AttentionShape, scale: Float) {
        (batch, queryHeads, keyValueHeads, queryLength, keyLength) =
            (shape.batch, shape.queryHeads, shape.keyValueHeads, shape.queryLength, shape.keyLength)
        self.scale = scale
    }
}

/// A block list on the device (``CUDABlockList``), or none: null pointers, which the kernels read as "every block,
/// none partial".
struct BlockListOperand {
    var starts: UInt64 = 0
    var entries: UInt64 = 0
    var batchStride = 0
    var headStride = 0

    init() {}

    init(_ blocks: CUDABlockList?) {
        guard let blocks else { return }
        (starts, entries) = (blocks.starts.address, blocks.entries.address)
        (batchStride, headStride) = (blocks.batchStride, blocks.headStride)
    }
}

/// One mod's three argument arrays on the device (``CUDAModArguments``).
struct ModOperands {
    var ints: UInt64
    var floats: UInt64
    var tables: UInt64
}

/// The operands every forward and gradient kernel shares.
struct SharedOperands {
    var sizes: AttentionSizes
    /// Whether every row operand can be read 16 bytes at a time.
    var vectorLoads: Bool
    var blocks: BlockListOperand
    var mask: ModOperands?
    var scoreMod: ModOperands?
}

/// A forward launch's operands.
struct ForwardOperands {
    /// Q, K and V's TMA descriptors, for kernels that read them.
    var tensorMaps: [CUDATensorMap]
    var query: TensorOperand
    var key: TensorOperand
    var value: TensorOperand
    var output: TensorOperand
    var logSumExp: UInt64
    /// A zeroed `int` for kernels that schedule their tiles (``ForwardAttentionKernel/schedulesTiles``), else 0.
    var tileCounter: UInt64 = 0
    /// Query heads per band of the Hopper kernel's tile order (``HopperForwardKernel/headBand(for:multiprocessors:l2Bytes:)``).
    var bandHeads = 1
    var shared: SharedOperands
}

/// A dK/dV or dQ launch's operands.
struct GradientOperands {
    /// Q, K, V and dO's TMA descriptors, for kernels that read them.
    var tensorMaps: [CUDATensorMap]
    var query: TensorOperand
    var key: TensorOperand
    var value: TensorOperand
    var outputGradient: TensorOperand
    var logSumExp: UInt64
    var delta: UInt64
    /// ``DeltaKernel``'s per-block LSE and Delta, for kernels that read them (0 otherwise).
    var blockRows: UInt64
    /// The gradients the kernel writes: dK and dV, or dQ.
    var gradients: [UInt64]
    /// Where a kernel that sums dQ adds it (``QueryGradientSums``), or zeros.
    var queryGradientSums = QueryGradientSumsOperand()
    var shared: SharedOperands
    /// The device array of one Float32 gradient pointer per score-mod table slot (null for Int tables).
    var tableGradients: UInt64
}

/// ``QueryGradientSums``' tiles and turn counters, the turn of each entry of the transposed block list (0 without
/// a list: the kernel then knows the turns), and the heads per band of the kernel's launch order
/// (``HopperBackwardKernel/headBand(walk:turnSteps:heads:headBytes:multiprocessors:l2Bytes:)``).
struct QueryGradientSumsOperand {
    var sums: UInt64 = 0
    var turns: UInt64 = 0
    var blockTurns: UInt64 = 0
    var bandHeads = 1
}

/// The Delta kernel's operands.
struct DeltaOperands {
    var output: TensorOperand
    var outputGradient: TensorOperand
    var logSumExp: UInt64
    var delta: UInt64
    /// Where the per-block LSE and Delta go, or 0.
    var blockRows: UInt64
    var queryHeads: Int
    var queryLength: Int
    var valueDim: Int
    var rows: Int
}
