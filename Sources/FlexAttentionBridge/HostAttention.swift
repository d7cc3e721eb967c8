import FlexAttention
import Synchronization

/// Prepared attention on the CPU: the options resolved once (the mask analysed into a block mask at the CPU's tile
/// size, causal folded in), and the score mod's current table values, which a call's `tables` replace.
final class HostAttention: AttentionEngine {
    private let attention = Attention(device: .cpu)
    private let shape: AttentionShape
    /// The score mod's Float tables, in the order backward returns their gradients.
    private let gradientTableNames: [String]
    private let state: Mutex<State>

    /// What a call's new table values change.
    private struct State {
        var options: AttentionOptions
        /// The score mod's text, tables and parameters, to rebuild it with new table values.
        var scoreModSource: ModArgument
    }

    init(_ description: AttentionDescription) throws {
        shape = description.shape
        gradientTableNames = description.gradientTables.map(\.name)
        var options = AttentionOptions(
            scale: description.scale, isCausal: description.causal != nil,
            causalAlignment: description.causal ?? .topLeft, scoreMod: description.scoreMod, sinks: description.sinks)
        if let mask = description.mask {
            if shape.isEmpty {  // nothing to analyse: every row keeps nothing
                options.mask = mask
            } else if let causal = description.causal {
                // The CPU reuses a block mask only without causal: fold it in, so the analysis is done once here.
                let causalMask: MaskMod = causal == .topLeft ? .causal : .causalBottomRight
                options = AttentionOptions(
                    scale: options.scale, blockMask: try BlockMask(
                        causalMask && mask, batch: shape.batch, heads: shape.queryHeads,
                        queryLength: shape.queryLength, keyLength: shape.keyLength),
                    scoreMod: options.scoreMod, sinks: options.sinks)
            } else {
                options.blockMask = try description.blockMask ?? BlockMask(
                    mask, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength,
                    keyLength: shape.keyLength)
            }
        }
        try options.check(for: shape)
        state = Mutex(State(options: options, scoreModSource: description.scoreModSource))
    }

    func forward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
        stream: UnsafeMutableRawPointer?
    ) throws -> (output: ProducedTensor, logSumExp: ProducedTensor) {
        let result = try forward(query, key, value, tables)
        return (.host(result.output), .host(result.logSumExp))
    }

    func forward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
        into output: DLPackArgument, logSumExp: DLPackArgument, stream: UnsafeMutableRawPointer?
    ) throws {
        let (outputTensor, logSumExpTensor) = (try output.hostTensor(), try logSumExp.hostTensor())
        let result = try forward(query, key, value, tables)
        try outputTensor.copy(from: result.output)
        try logSumExpTensor.copy(from: result.logSumExp)
    }

    func backward(
        query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, output: DLPackArgument,
        logSumExp: DLPackArgument, outputGradient: DLPackArgument, tables: [TableValues],
        stream: UnsafeMutableRawPointer?
    ) throws -> ProducedGradients {
        let gradients = try withOptions(tables) { options in
            let forward = AttentionOutput(output: try output.hostTensor(), logSumExp: try logSumExp.hostTensor())
            return try attention.backward(
                query: query.hostTensor(), key: key.hostTensor(), value: value.hostTensor(), forward: forward,
                outputGradient: outputGradient.hostTensor(), options: options)
        }
        let tableGradients = try gradientTableNames.map { name in
            guard let gradient = gradients.tableGradients[name] else {
                throw BridgeError.invalid("the CPU backward returned no gradient for table \(name)")
            }
            return ProducedTensor.host(gradient)
        }
        return ProducedGradients(
            query: .host(gradients.query), key: .host(gradients.key), value: .host(gradients.value),
            tables: tableGradients, sink: gradients.sinkGradient.map { .host($0) })
    }

    /// The forward pass with `tables`' values (kept for later calls once it succeeds), into new tensors.
    private func forward(
        _ query: DLPackArgument, _ key: DLPackArgument, _ value: DLPackArgument, _ tables: [TableValues]
    ) throws -> AttentionOutput {
        try withOptions(tables) { options in
            try attention.forward(
                query: query.hostTensor(), key: key.hostTensor(), value: value.hostTensor(), options: options)
        }
    }

    /// Runs `body` with the options whose score mod reads `tables`' values (the current ones when none are given),
    /// and keeps those values for later calls once `body` succeeds.
    private func withOptions<Result>(_ tables: [TableValues], _ body: (AttentionOptions) throws -> Result) throws
        -> Result
    {
        guard !tables.isEmpty else { return try body(state.withLock { $0.options }) }
        var updated = state.withLock { $0 }
        var replacements: [String: [Float]] = [:]
        for table in tables {
            if case .cuda = table.values.location {
                throw BridgeError.invalid("table \(table.name) is in CUDA memory; this attention runs on the CPU")
            }
            replacements[table.name] = try table.values.floats()
        }
        updated.scoreModSource = try updated.scoreModSource.replacingFloatTables(replacements)
        updated.options.scoreMod = try updated.scoreModSource.scoreMod()
        let result = try body(updated.options)
        state.withLock { $0 = updated }
        return result
    }
}

extension ModArgument {
    /// The same mod text and parameters with the named Float tables' values replaced (same shapes).
    func replacingFloatTables(_ values: [String: [Float]]) throws -> ModArgument {
        ModArgument(
            text: text,
            tables: try tables.map { table in
                guard let new = values[table.name] else { return table }
                return try ModTable(name: table.name, shape: table.shape, elements: .float(new))
            },
            parameters: parameters)
    }
}
