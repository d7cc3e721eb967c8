import Testing
@testable import FlexAttention

/// The causal alignment option, and backward tied to the options its forward pass ran with.
@Suite("Attention options")
struct OptionsTests {
    func inputs(_ shapes: [[Int]]) throws -> [Tensor] {
        var generator = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
        return try shapes.map { shape in
            try Tensor((0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &generator) }, shape: shape)
        }
    }

    @Test("bottom-right causal lets a decoding query see every key, and equals the causalBottomRight mask")
    func bottomRightCausal() throws {
        let attention = Attention()
        for (sq, skv) in [(1, 67), (5, 131), (40, 40)] {
            let t = try inputs([[1, 2, sq, 24], [1, 2, skv, 24], [1, 2, skv, 16]])
            let aligned = try attention.forward(
                query: t[0], key: t[1], value: t[2], options: .init(isCausal: true, causalAlignment: .bottomRight))
            let masked = try attention.forward(query: t[0], key: t[1], value: t[2], options: .init(mask: .causalBottomRight))
            #expect(aligned.output.floats() == masked.output.floats())
            if sq == 1 {
                let unmasked = try attention.forward(query: t[0], key: t[1], value: t[2])
                let error = zip(aligned.output.floats(), unmasked.output.floats()).map { abs($0 - $1) }.max() ?? 0
                #expect(error < 1e-5, "a single bottom-right query keeps every key")
            }
            if sq == skv {
                let topLeft = try attention.forward(query: t[0], key: t[1], value: t[2], options: .init(isCausal: true))
                #expect(aligned.output.floats() == topLeft.output.floats())
            }
        }
    }

    @Test("backward uses the forward pass's options, and refuses different ones")
    func backwardTiedToForward() throws {
        let attention = Attention()
        let t = try inputs([[1, 2, 50, 16], [1, 2, 50, 16], [1, 2, 50, 16], [1, 2, 50, 16]])
        let options = AttentionOptions(isCausal: true, scoreMod: .softCap(20))
        let forward = try attention.forward(query: t[0], key: t[1], value: t[2], options: options)
        #expect(forward.options == options)
        let implicit = try attention.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3])
        let explicit = try attention.backward(
            query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3], options: options)
        #expect(implicit.query.floats() == explicit.query.floats())
        #expect(throws: FlexAttentionError.self) {
            try attention.backward(
                query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3],
                options: .init(isCausal: true, scoreMod: .softCap(30)))
        }
        // An output paired by hand carries no options: the given ones are used.
        let saved = AttentionOutput(output: forward.output, logSumExp: forward.logSumExp)
        let fromSaved = try attention.backward(
            query: t[0], key: t[1], value: t[2], forward: saved, outputGradient: t[3], options: options)
        #expect(fromSaved.key.floats() == explicit.key.floats())
    }

    @Test("gradients are deterministic by default, and the CPU's stay bit for bit the same when any order is allowed")
    func anyOrderGradientsOnTheCPU() throws {
        #expect(AttentionOptions().deterministicGradients)
        let attention = Attention()
        let t = try inputs([[1, 4, 70, 24], [1, 2, 90, 24], [1, 2, 90, 16], [1, 4, 70, 16]])
        var runs: [[UInt32]] = []
        for deterministic in [true, false] {
            let options = AttentionOptions(isCausal: true, scoreMod: try .alibi(heads: 4), deterministicGradients: deterministic)
            let forward = try attention.forward(query: t[0], key: t[1], value: t[2], options: options)
            let gradients = try attention.backward(query: t[0], key: t[1], value: t[2], forward: forward, outputGradient: t[3])
            runs.append(([gradients.query, gradients.key, gradients.value] + gradients.tableGradients.values)
                .flatMap { $0.floats().map(\.bitPattern) })
        }
        #expect(runs[0] == runs[1])
        #expect(runs[0].contains { $0 != 0 })
    }
}
