@testable import FlexAttention
import Testing

/// The offsets of packed sequences, and what a packed call refuses before it computes anything.
@Suite struct PackedSequenceTests {
    @Test("ranges from the offsets; an index outside the sequences has an empty range")
    func ranges() throws {
        let sequences = try PackedSequences(queryOffsets: [0, 5, 6, 6], keyOffsets: [0, 5, 12, 14])
        #expect(sequences.count == 3)
        #expect((0..<3).map(sequences.queryRange) == [0..<5, 5..<6, 6..<6])
        #expect((0..<3).map(sequences.keyRange) == [0..<5, 5..<12, 12..<14])
        #expect(sequences.queryRange(3).isEmpty && sequences.keyRange(-1).isEmpty)
        #expect(try PackedSequences(queryOffsets: [0], keyOffsets: [0]).count == 0)
        #expect(sequences == (try PackedSequences(queryOffsets: [0, 5, 6, 6], keyOffsets: [0, 5, 12, 14])))
    }

    @Test("offsets that do not start at 0, decrease, or differ in count", arguments: [
        ([Int](), [Int]()), ([1, 4], [0, 4]), ([0, 4], [2, 4]), ([0, 4, 3], [0, 1, 2]), ([0, 1, 2], [0, 2, 1]),
        ([0, 1], [0, 1, 2]),
    ])
    func badOffsets(_ queries: [Int], _ keys: [Int]) {
        #expect {
            try PackedSequences(queryOffsets: queries, keyOffsets: keys)
        } throws: { error in
            guard case .invalidArgument = error as? FlexAttentionError else { return false }
            return true
        }
    }

    @Test("no sequences, or none with rows: empty results, zero gradients, sinks included")
    func nothingToAttend() throws {
        var rng = SeededRandom(seed: freshSeed())
        let bias = try FloatTable(name: "bias", values: [1, 2], shape: [2])
        let options = AttentionOptions(scoreMod: ScoreMod { score, _, h, _, _ in score + bias[h % 2] }, sinks: [0, 1])
        for (queries, keys) in [([0], [0]), ([0, 0, 0], [0, 3, 3])] {
            let sequences = try PackedSequences(queryOffsets: queries, keyOffsets: keys)
            let k = try randomTensor([keys[keys.count - 1], 1, 8], rng: &rng)
            let (q, dO) = (try Tensor(zeros: [0, 2, 8]), try Tensor(zeros: [0, 2, 8]))
            let attention = Attention()
            let forward = try attention.forward(query: q, key: k, value: k, sequences: sequences, options: options)
            #expect(forward.output.shape == [0, 2, 8] && forward.logSumExp.shape == [2, 0])
            let gradients = try attention.backward(
                query: q, key: k, value: k, sequences: sequences, forward: forward, outputGradient: dO)
            #expect(gradients.key.shape == k.shape && gradients.key.floats().allSatisfy { $0 == 0 })
            #expect(gradients[table: bias]?.floats() == [0, 0])
            #expect(gradients.sinkGradient?.floats() == [0, 0])
        }
    }

    /// Q `[9, 4, 8]`, K and V `[12, 2, 8]` for the sequences (5 queries, 7 keys) and (4, 5).
    struct Inputs {
        let sequences: PackedSequences
        let query: Tensor, key: Tensor, value: Tensor, outputGradient: Tensor

        init() throws {
            var rng = SeededRandom(seed: freshSeed())
            sequences = try PackedSequences(queryOffsets: [0, 5, 9], keyOffsets: [0, 7, 12])
            query = try randomTensor([9, 4, 8], rng: &rng)
            key = try randomTensor([12, 2, 8], rng: &rng)
            value = try randomTensor([12, 2, 8], rng: &rng)
            outputGradient = try randomTensor([9, 4, 8], rng: &rng)
        }
    }

    @Test("inputs that do not match the offsets or each other")
    func mismatchedInputs() throws {
        let t = try Inputs()
        let attention = Attention()
        let other = try PackedSequences(queryOffsets: [0, 5, 10], keyOffsets: [0, 7, 12])
        #expect(throws: FlexAttentionError.mismatchedDimension(
            name: "rows (the last query offset)", expected: 10, actual: 9, tensor: "query")) {
            try attention.forward(query: t.query, key: t.key, value: t.value, sequences: other)
        }
        let fewerKeys = try PackedSequences(queryOffsets: [0, 5, 9], keyOffsets: [0, 7, 11])
        #expect(throws: FlexAttentionError.mismatchedDimension(
            name: "rows (the last key offset)", expected: 11, actual: 12, tensor: "key")) {
            try attention.forward(query: t.query, key: t.key, value: t.value, sequences: fewerKeys)
        }
        #expect(throws: FlexAttentionError.mismatchedDimension(
            name: "sequence length", expected: 12, actual: 11, tensor: "value")) {
            try attention.forward(
                query: t.query, key: t.key, value: t.value.narrowed(axis: 0, range: 0..<11), sequences: t.sequences)
        }
        #expect(throws: FlexAttentionError.wrongRank(tensor: "query", expected: 3, actual: 4)) {
            try attention.forward(
                query: t.query.reshaped([1, 9, 4, 8]), key: t.key, value: t.value, sequences: t.sequences)
        }
        let threeHeads = try Tensor(zeros: [12, 3, 8])
        #expect(throws: FlexAttentionError.headsNotDivisible(queryHeads: 4, keyValueHeads: 3)) {
            try attention.forward(query: t.query, key: threeHeads, value: threeHeads, sequences: t.sequences)
        }
    }

    @Test("a block mask, bad sinks, and a mod that leaves some sequence's domain")
    func refusedOptions() throws {
        let t = try Inputs()
        let attention = Attention()
        let blockMask = try BlockMask(.causal, queryLength: 9, keyLength: 12)
        #expect {
            try attention.forward(
                query: t.query, key: t.key, value: t.value, sequences: t.sequences, options: .init(blockMask: blockMask))
        } throws: { error in
            guard case .invalidArgument(let reason) = error as? FlexAttentionError else { return false }
            return reason.contains("block mask cannot describe packed sequences")
        }
        #expect(throws: FlexAttentionError.self) {
            try attention.forward(
                query: t.query, key: t.key, value: t.value, sequences: t.sequences, options: .init(sinks: [0, 1]))
        }
        // One window per sequence would do; one too few leaves sequence 1's domain, in a mask or a score mod.
        let windows = try IntTable(name: "window", values: [3], shape: [1])
        let slopes = try FloatTable(name: "slope", values: [0.5], shape: [1])
        for options in [AttentionOptions(mask: MaskMod { b, _, q, kv in q - kv < windows[b] }),
                        AttentionOptions(scoreMod: ScoreMod { score, b, _, _, _ in score * slopes[b] })] {
            #expect {
                try attention.forward(
                    query: t.query, key: t.key, value: t.value, sequences: t.sequences, options: options)
            } throws: { error in
                guard case .tableIndexOutOfRange(_, _, let index, _, _) = error as? ModError else { return false }
                return index == 1
            }
        }
    }

    @Test("backward refuses other options, and results of other shapes")
    func backwardErrors() throws {
        let t = try Inputs()
        let attention = Attention()
        let forward = try attention.forward(
            query: t.query, key: t.key, value: t.value, sequences: t.sequences, options: .init(isCausal: true))
        #expect(throws: FlexAttentionError.self) {
            try attention.backward(
                query: t.query, key: t.key, value: t.value, sequences: t.sequences, forward: forward,
                outputGradient: t.outputGradient, options: .init())
        }
        let transposed = AttentionOutput(
            output: forward.output, logSumExp: try forward.logSumExp.permuted([1, 0]), options: forward.options)
        #expect(throws: FlexAttentionError.self) {
            try attention.backward(
                query: t.query, key: t.key, value: t.value, sequences: t.sequences, forward: transposed,
                outputGradient: t.outputGradient)
        }
        #expect(throws: FlexAttentionError.self) {
            try attention.backward(
                query: t.query, key: t.key, value: t.value, sequences: t.sequences, forward: forward,
                outputGradient: t.outputGradient.narrowed(axis: 0, range: 0..<8))
        }
    }
}
