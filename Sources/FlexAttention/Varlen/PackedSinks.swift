/// Attention sinks on packed results. The sink algebra is per row (``AttentionSinks``), and the packed log-sum-exp
/// `[Hq, totalQ]` with `O` `[totalQ, Hq, Dv]` are, as views, the rows of one sequence of batch 1: `[1, Hq, totalQ]`
/// and `[1, Hq, totalQ, Dv]`. So the sinks are joined to the whole pack at once, after every sequence has run.
enum PackedSinks {
    /// Joins `sinks` to each row: scales `output` in place and returns the new log-sum-exp, `[Hq, totalQ]`.
    static func forward(output: Tensor, logSumExp: Tensor, sinks: [Float]) throws -> Tensor {
        let rows = 0..<output.shape[0]
        guard !rows.isEmpty else { return logSumExp }
        let joined = try AttentionSinks.forward(
            AttentionOutput(output: output.packedRows(rows), logSumExp: logSumExp.packedColumns(rows)), sinks: sinks,
            options: nil)
        try output.packedRows(rows).copy(from: joined.output)
        return try joined.logSumExp.reshaped(logSumExp.shape)
    }

    /// `∂loss/∂sink`, Float32 `[Hq]`, summed over every sequence's rows.
    static func gradient(forward: AttentionOutput, outputGradient: Tensor, sinks: [Float]) throws -> Tensor {
        let rows = 0..<forward.output.shape[0]
        return try AttentionSinks.gradient(
            forward: AttentionOutput(
                output: forward.output.packedRows(rows), logSumExp: forward.logSumExp.packedColumns(rows)),
            outputGradient: outputGradient.packedRows(rows), sinks: sinks)
    }
}
