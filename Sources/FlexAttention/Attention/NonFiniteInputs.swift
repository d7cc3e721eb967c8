/// NaN and ±∞ in attention's inputs reach exactly the outputs that use them, on every device; the rules are
/// documented on ``Attention/forward(query:key:value:options:outputDType:)`` and
/// ``Attention/backward(query:key:value:forward:outputGradient:options:gradientDType:)``.
///
/// Inside a tiled kernel a score the mask removes still enters the GEMMs, with probability 0, and 0 × NaN is NaN:
/// one non-finite key or value would spread to every row of its tile, a non-finite query or output gradient to
/// every key of its tile. So the inputs are scanned row by row. When every row is finite, the common case costing
/// only the scan, attention runs on them as they are. Otherwise it runs on copies with the non-finite rows zeroed
/// (and, in backward, the rows that use them made to keep nothing), and the outputs that use a non-finite value
/// are then set to NaN, found through the mask (``MaskReach``).
enum NonFiniteInputs {
    /// `compute` run on `query`, `key`, `value`, or on their finite copies with the poisoned rows set to NaN.
    static func forward(
        problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor,
        compute: (Tensor, Tensor, Tensor) throws -> AttentionOutput
    ) throws -> AttentionOutput {
        let badQueries = RowFlags(nonFiniteRowsOf: query)
        var badKeys = RowFlags(nonFiniteRowsOf: key)
        badKeys.formUnion(RowFlags(nonFiniteRowsOf: value))
        guard !badQueries.isEmpty || !badKeys.isEmpty else { return try compute(query, key, value) }

        let result = try compute(query.zeroing(badQueries), key.zeroing(badKeys), value.zeroing(badKeys))
        var poisoned = badQueries
        if !badKeys.isEmpty {
            poisoned.formUnion(try MaskReach(problem).queries(keepingAnyOf: badKeys))
        }
        // A row that keeps nothing (LSE −∞ on the finite copies) still gives O = 0, LSE = −∞.
        let logSumExp = result.logSumExp.floats()
        poisoned.unflag { logSumExp[$0] == -.infinity }
        result.output.fillWithNaN(poisoned)
        poisoned.forEach { result.logSumExp.set(.nan, at: $0, $1, $2) }
        return result
    }

    /// `compute` run on the given tensors, or on finite copies (with the poisoned rows' LSE −∞, so that they add
    /// nothing) with the gradients that use a poisoned row set to NaN.
    static func backward(
        problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor,
        forward: AttentionOutput, outputGradient: Tensor,
        compute: (Tensor, Tensor, Tensor, AttentionOutput, Tensor) throws -> AttentionGradients
    ) throws -> AttentionGradients {
        var badRows = RowFlags(nonFiniteRowsOf: query)
        badRows.formUnion(RowFlags(nonFiniteRowsOf: outputGradient))
        badRows.formUnion(RowFlags(nonFiniteRowsOf: forward.output))
        badRows.formUnion(try RowFlags(invalidLogSumExp: forward.logSumExp))
        var badKeys = RowFlags(nonFiniteRowsOf: key)
        badKeys.formUnion(RowFlags(nonFiniteRowsOf: value))
        guard !badRows.isEmpty || !badKeys.isEmpty else {
            return try compute(query, key, value, forward, outputGradient)
        }

        let reach = try MaskReach(problem)
        var poisoned = badRows
        if !badKeys.isEmpty { poisoned.formUnion(reach.queries(keepingAnyOf: badKeys)) }
        var logSumExp = forward.logSumExp.floats()
        poisoned.unflag { logSumExp[$0] == -.infinity }
        for index in poisoned.flaggedIndices { logSumExp[index] = -.infinity }
        let finiteForward = AttentionOutput(
            output: try forward.output.zeroing(badRows),
            logSumExp: try Tensor(logSumExp, shape: forward.logSumExp.shape, dtype: forward.logSumExp.dtype))
        let result = try compute(
            query.zeroing(badRows), key.zeroing(badKeys), value.zeroing(badKeys), finiteForward,
            outputGradient.zeroing(badRows))
        guard !poisoned.isEmpty else { return result }

        result.query.fillWithNaN(poisoned)
        let poisonedKeys = reach.keys(keptByAnyOf: poisoned)
        result.key.fillWithNaN(poisonedKeys)
        result.value.fillWithNaN(poisonedKeys)
        // Which table entries a poisoned row reaches is not tracked: every table gradient becomes NaN.
        let tables = try result.tableGradients.mapValues { table in
            try Tensor([Float](repeating: .nan, count: table.elementCount), shape: table.shape)
        }
        return AttentionGradients(query: result.query, key: result.key, value: result.value, tableGradients: tables)
    }
}
