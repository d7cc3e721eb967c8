/// What ``AttentionPlan/forward(query:key:value:on:)`` and ``merging(_:on:)`` return: device tensors written by
/// work queued on the call's stream.
public struct DeviceAttentionOutput: Sendable {
    /// `O`, `[B, Hq, Sq, Dv]`, the inputs' dtype.
    public let output: DeviceTensor
    /// Natural-log log-sum-exp of each row's kept scores, Float32 `[B, Hq, Sq]`, contiguous (a merge's parts may
    /// have any strides); −∞ for rows that keep nothing.
    public let logSumExp: DeviceTensor

    /// Pairs an output with its log-sum-exp: the tensors a forward pass writes into, or ones saved from an earlier
    /// pass for ``AttentionPlan/backward(query:key:value:forward:outputGradient:on:)``.
    public init(output: DeviceTensor, logSumExp: DeviceTensor) {
        self.output = output
        self.logSumExp = logSumExp
    }
}

/// What ``AttentionPlan/backward(query:key:value:forward:outputGradient:on:)`` returns, or the tensors
/// ``AttentionPlan/backward(query:key:value:forward:outputGradient:into:on:)`` writes: contiguous, Q's, K's and V's
/// gradients in the inputs' dtype, the others Float32.
public struct DeviceAttentionGradients: Sendable {
    /// `∂loss/∂Q`, shape of Q.
    public let query: DeviceTensor
    /// `∂loss/∂K`, shape of K (summed over the query heads that share each key head).
    public let key: DeviceTensor
    /// `∂loss/∂V`, shape of V (summed likewise).
    public let value: DeviceTensor
    /// `∂loss/∂table` for every Float table the score mod reads, by table name: Float32, contiguous, the table's
    /// shape.
    public let tableGradients: [String: DeviceTensor]
    /// `∂loss/∂sink` for a plan's attention sinks, Float32 `[Hq]` (0 for a head whose sink is −∞); nil for a plan
    /// without sinks.
    public let sinkGradient: DeviceTensor?

    /// `∂loss/∂table` for a table the score mod reads (by the table itself rather than its name); nil for a table
    /// it does not read.
    public subscript(table table: FloatTable) -> DeviceTensor? {
        tableGradients[table.table.name].flatMap { $0.shape == table.table.shape ? $0 : nil }
    }

    /// Gradients to write into: contiguous tensors of Q's, K's and V's shapes in their dtype, one Float32 tensor
    /// per Float table the score mod reads, and for a plan with sinks a Float32 `[Hq]` tensor for theirs.
    public init(
        query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, tableGradients: [String: DeviceTensor] = [:],
        sinkGradient: DeviceTensor? = nil
    ) {
        self.query = query
        self.key = key
        self.value = value
        self.tableGradients = tableGradients
        self.sinkGradient = sinkGradient
    }
}
