import CFlexAttention
import FlexAttention

/// An `fa_attention_desc`, read and checked field by field.
struct AttentionDescription {
    let device: Device
    let shape: AttentionShape
    /// `AttentionOptions.scale`: nil for `1/√D`.
    let scale: Float?
    /// How causal lines queries up with keys; nil when not causal.
    let causal: CausalAlignment?
    /// The score mod's text, tables and parameters, kept to rebuild it with new table values.
    let scoreModSource: ModArgument
    let scoreMod: ScoreMod?
    /// The mask given as text, or the given block mask's.
    let mask: MaskMod?
    let blockMask: BlockMask?
    let sinks: [Float]?
    let includesBackward: Bool
    /// `AttentionOptions.deterministicGradients`: false when `any_order_gradients` is nonzero.
    let deterministicGradients: Bool

    init(_ desc: fa_attention_desc) throws {
        device = try Self.device(desc.device)
        let dtype = try Self.dtype(desc.dtype)
        func size(_ value: Int64, _ name: String, positive: Bool = false) throws -> Int {
            try checkSize(value, named: name, positive: positive)
        }
        shape = try AttentionShape(
            batch: size(desc.batch, "batch"), queryHeads: size(desc.query_heads, "query_heads", positive: true),
            keyValueHeads: size(desc.key_value_heads, "key_value_heads", positive: true),
            queryLength: size(desc.query_length, "query_length"), keyLength: size(desc.key_length, "key_length"),
            headDim: size(desc.head_dim, "head_dim", positive: true),
            valueDim: size(desc.value_dim, "value_dim", positive: true), dtype: dtype)
        try Self.checkElementCounts(shape)
        scale = try Self.scale(desc.scale)
        causal = switch desc.causal {
        case Int32(FA_CAUSAL_NONE.rawValue): nil
        case Int32(FA_CAUSAL_TOP_LEFT.rawValue): .topLeft
        case Int32(FA_CAUSAL_BOTTOM_RIGHT.rawValue): .bottomRight
        default: throw BridgeError.invalid("causal is \(desc.causal), not one of FA_CAUSAL_NONE, _TOP_LEFT, _BOTTOM_RIGHT")
        }
        scoreModSource = try ModArgument(desc.score_mod, role: "score_mod")
        scoreMod = try scoreModSource.scoreMod()
        if desc.block_mask != nil {
            blockMask = try Handle.object(desc.block_mask, as: BlockMaskObject.self, named: "block_mask").blockMask
            mask = blockMask?.mask
        } else {
            blockMask = nil
            mask = try ModArgument(desc.mask_mod, role: "mask_mod").mask()
        }
        sinks = try Self.sinks(desc.sinks, count: desc.sink_count, queryHeads: shape.queryHeads)
        includesBackward = desc.includes_backward != 0
        deterministicGradients = desc.any_order_gradients == 0
    }

    /// The score mod's Float tables, whose gradients backward returns: in the order the score mod first reads them,
    /// as the plan's kernels take them.
    var gradientTables: [ModTable] {
        scoreMod?.expression.arguments.tables.filter { $0.elementType == .float } ?? []
    }

    private static func device(_ device: DLDevice) throws -> Device {
        switch device.device_type {
        case kDLCPU: return .cpu
        case kDLCUDA: return .cuda(Int(device.device_id))
        default:
            throw BridgeError.invalid(
                "device type \(device.device_type.rawValue) cannot run attention: use kDLCPU (1) or kDLCUDA (2)")
        }
    }

    private static func dtype(_ type: DLDataType) throws -> DType {
        switch (UInt32(type.code), type.bits, type.lanes) {
        case (kDLFloat.rawValue, 32, 1): return .float32
        case (kDLFloat.rawValue, 16, 1): return .float16
        case (kDLBfloat.rawValue, 16, 1): return .bfloat16
        default:
            throw BridgeError.invalid(
                "dtype (code \(type.code), bits \(type.bits), lanes \(type.lanes)) is not float32, float16 or bfloat16")
        }
    }

    /// Refuses sizes whose tensors have more bytes than an Int counts, so that no product of sizes overflows later.
    private static func checkElementCounts(_ shape: AttentionShape) throws {
        let tensors = [
            [shape.batch, shape.queryHeads, shape.queryLength, max(shape.headDim, shape.valueDim)],
            [shape.batch, shape.keyValueHeads, shape.keyLength, max(shape.headDim, shape.valueDim)],
        ]
        for sizes in tensors {
            var bytes = 8
            for size in sizes {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: max(size, 1))
                guard !overflow else { throw BridgeError.invalid("\(shape) describes tensors too large to address") }
                bytes = product
            }
        }
    }

    static func scale(_ scale: Double) throws -> Float? {
        guard scale != 0 else { return nil }
        let narrowed = Float(scale)
        guard scale > 0, narrowed.isFinite, narrowed > 0 else {
            throw BridgeError.invalid("scale is \(scale); it must be a positive finite Float, or 0 for 1/sqrt(head_dim)")
        }
        return narrowed
    }

    static func sinks(_ pointer: UnsafePointer<Float>?, count: Int64, queryHeads: Int) throws -> [Float]? {
        guard pointer != nil || count != 0 else { return nil }
        guard count == Int64(queryHeads) else {
            throw BridgeError.invalid("sink_count is \(count); sinks need one logit per query head (\(queryHeads))")
        }
        return try cArray(pointer, count: count, named: "sinks")
    }
}
