/// Attention with nothing to attend (no batch, no queries, or no keys: an empty KV cache), on every device: each
/// row keeps nothing, so O = 0 and LSE = −∞ (as for a row a mask empties), and every gradient is 0.
enum EmptyAttention {
    static func forward(_ problem: AttentionProblem, outputDType: DType) throws -> AttentionOutput {
        let shape = problem.shape
        let rows = shape.logSumExpShape.reduce(1, *)
        return AttentionOutput(
            output: try Tensor(zeros: shape.outputShape, dtype: outputDType),
            logSumExp: try Tensor([Float](repeating: -.infinity, count: rows), shape: shape.logSumExpShape),
            options: problem.options)
    }

    static func backward(_ problem: AttentionProblem, gradientDType: DType) throws -> AttentionGradients {
        let shape = problem.shape
        var tables: [String: Tensor] = [:]
        for table in problem.scoreMod?.expression.arguments.tables ?? [] where table.elementType == .float {
            tables[table.name] = try Tensor(zeros: table.shape)
        }
        return AttentionGradients(
            query: try Tensor(zeros: shape.queryShape, dtype: gradientDType),
            key: try Tensor(zeros: shape.keyShape, dtype: gradientDType),
            value: try Tensor(zeros: shape.valueShape, dtype: gradientDType), tableGradients: tables)
    }
}
