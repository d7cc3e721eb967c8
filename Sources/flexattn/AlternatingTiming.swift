import FlexAttention

/// One attention configuration with its inputs ready, so that single passes can be timed in turn with another's.
struct PreparedRun {
    let attention: Attention
    let options: AttentionOptions
    let inputs: [(q: Tensor, k: Tensor, v: Tensor, dO: Tensor)]
    private(set) var outputs: [AttentionOutput]

    /// Random inputs of `[1, heads, sequence / pieces, headDim]` for each piece, and their forward outputs.
    init(_ attention: Attention, _ run: ModsBenchmark.MaskOptions, sequence: Int, heads: Int, headDim: Int) throws {
        let shape = [1, heads, sequence / run.pieces, headDim]
        self.attention = attention
        options = run.options
        inputs = try (0..<run.pieces).map { _ in
            try (q: randomTensor(shape), k: randomTensor(shape), v: randomTensor(shape), dO: randomTensor(shape))
        }
        outputs = try inputs.map { try attention.forward(query: $0.q, key: $0.k, value: $0.v, options: run.options) }
    }

    /// Seconds of one forward pass over every piece.
    mutating func forward() throws -> Double {
        let (attention, options, inputs) = (attention, options, inputs)
        var outputs: [AttentionOutput] = []
        let seconds = try seconds {
            outputs = try inputs.map { try attention.forward(query: $0.q, key: $0.k, value: $0.v, options: options) }
        }
        self.outputs = outputs
        return seconds
    }

    /// Seconds of one backward pass over every piece.
    func backward() throws -> Double {
        try seconds {
            for (input, output) in zip(inputs, outputs) {
                _ = try attention.backward(
                    query: input.q, key: input.k, value: input.v, forward: output, outputGradient: input.dO,
                    options: options)
            }
        }
    }

    private func seconds(_ body: () throws -> Void) throws -> Double {
        let elapsed = try ContinuousClock().measure(body)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}

/// Two runs timed in alternation.
struct Alternation {
    /// Medians of each run's seconds and of the per-round ratio first / second (nil without rounds).
    struct Medians {
        let first: Double, second: Double, ratio: Double?
    }

    let forward: Medians
    let backward: Medians
}

/// Times `first` and `second` pass by pass in turn, `rounds` times after a warm-up of each.
func alternate(_ first: PreparedRun, _ second: PreparedRun, rounds: Int = 7) throws -> Alternation {
    var (first, second) = (first, second)
    _ = try (first.forward(), second.forward(), first.backward(), second.backward())
    var forward: [(Double, Double)] = [], backward: [(Double, Double)] = []
    for _ in 0..<rounds {
        forward.append((try first.forward(), try second.forward()))
        backward.append((try first.backward(), try second.backward()))
    }
    func medians(_ pairs: [(Double, Double)]) -> Alternation.Medians {
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        return Alternation.Medians(
            first: median(pairs.map(\.0)) ?? 0, second: median(pairs.map(\.1)) ?? 0, ratio: median(pairs.map { $0.0 / $0.1 }))
    }
    return Alternation(forward: medians(forward), backward: medians(backward))
}
