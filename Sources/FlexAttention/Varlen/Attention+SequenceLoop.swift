/// Packed sequences run one after another through the dense machinery of the attention's device (the CPU loops,
/// or a CUDA plan per sequence), each on views of its rows: what every CPU call does, and a CUDA call whose inputs
/// hold NaN or ±∞ (the dense path's handling of them then applies to each sequence).
extension Attention {
    /// Writes every sequence's O and LSE into its rows of `output` (`[totalQ, Hq, Dv]`) and its columns of
    /// `logSumExp` (`[Hq, totalQ]`); rows of other sequences are left as they are.
    func forwardEachSequence(
        _ packed: PackedProblem, query: Tensor, key: Tensor, value: Tensor, into output: Tensor, logSumExp: Tensor
    ) throws {
        let problems = try packed.runs.map { try $0.problem.analysingMask() }  // every mask checked before any run
        for (run, problem) in zip(packed.runs, problems) {
            let result = try forwardWithoutSinks(
                problem, query: query.packedRows(run.queries), key: key.packedRows(run.keys),
                value: value.packedRows(run.keys), outputDType: output.dtype)
            try output.packedRows(run.queries).copy(from: result.output)
            try logSumExp.packedColumns(run.queries).copy(from: result.logSumExp)
        }
    }

    /// Writes every sequence's dQ, dK and dV into its rows of `gradients` (zeroed packed tensors) and returns the
    /// Float tables' gradients summed over the sequences in sequence order.
    func backwardEachSequence(
        _ packed: PackedProblem, query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput,
        outputGradient: Tensor, into gradients: (query: Tensor, key: Tensor, value: Tensor)
    ) throws -> [String: Tensor] {
        let problems = try packed.runs.map { try $0.problem.analysingMask() }
        var tableSums = TableGradientSums(packed.gradientTables)
        for (run, problem) in zip(packed.runs, problems) {
            let (rows, keys) = (run.queries, run.keys)
            let result = try backwardWithoutSinks(
                problem, query: query.packedRows(rows), key: key.packedRows(keys), value: value.packedRows(keys),
                forward: AttentionOutput(
                    output: forward.output.packedRows(rows), logSumExp: forward.logSumExp.packedColumns(rows)),
                outputGradient: outputGradient.packedRows(rows), gradientDType: gradients.query.dtype)
            try gradients.query.packedRows(rows).copy(from: result.query)
            try gradients.key.packedRows(keys).copy(from: result.key)
            try gradients.value.packedRows(keys).copy(from: result.value)
            tableSums.add(result.tableGradients)
        }
        return try tableSums.tensors()
    }
}

/// Float tables' gradients summed over sequences in Float64, in the order they are added: the same bits on every
/// run.
private struct TableGradientSums {
    private var sums: [String: (shape: [Int], values: [Double])] = [:]

    /// Sums for `tables`, each zero until a sequence adds to it.
    init(_ tables: [ModTable]) {
        for table in tables { sums[table.name] = (table.shape, [Double](repeating: 0, count: table.count)) }
    }

    mutating func add(_ gradients: [String: Tensor]) {
        for (name, gradient) in gradients {
            guard var sum = sums[name] else { continue }
            sums[name] = nil  // keeps the array uniquely referenced while it is added to
            for (index, value) in gradient.floats().enumerated() { sum.values[index] += Double(value) }
            sums[name] = sum
        }
    }

    func tensors() throws -> [String: Tensor] {
        try sums.mapValues { try Tensor($0.values.map { Float($0) }, shape: $0.shape) }
    }
}
