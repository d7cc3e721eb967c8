@testable import FlexAttention
import Testing

/// Every malformed input is a typed error that names the problem, thrown before anything is computed.
@Suite("Malformed inputs")
struct InputErrorTests {
    func tensor(_ shape: [Int], _ dtype: DType = .float32) throws -> Tensor {
        var rng = SeededRandom(seed: freshSeed())
        return try randomTensor(shape, dtype: dtype, rng: &rng)
    }

    func forwardError(_ q: Tensor, _ k: Tensor, _ v: Tensor, options: AttentionOptions = .init()) -> FlexAttentionError? {
        do {
            _ = try Attention().forward(query: q, key: k, value: v, options: options)
            return nil
        } catch let error as FlexAttentionError {
            return error
        } catch {
            return nil
        }
    }

    @Test func wrongRank() throws {
        let error = forwardError(try tensor([2, 8, 64]), try tensor([1, 2, 8, 64]), try tensor([1, 2, 8, 64]))
        #expect(error == .wrongRank(tensor: "query", expected: 4, actual: 3))
        #expect(error?.description == "query must have 4 dimensions, got 3")
    }

    @Test func mismatchedBatch() throws {
        let error = forwardError(try tensor([2, 2, 8, 16]), try tensor([1, 2, 8, 16]), try tensor([2, 2, 8, 16]))
        #expect(error == .mismatchedDimension(name: "batch", expected: 2, actual: 1, tensor: "key"))
    }

    @Test func mismatchedHeadDim() throws {
        let error = forwardError(try tensor([1, 2, 8, 16]), try tensor([1, 2, 8, 32]), try tensor([1, 2, 8, 16]))
        #expect(error == .mismatchedDimension(name: "head dim", expected: 16, actual: 32, tensor: "key"))
    }

    @Test func mismatchedKeyAndValueLength() throws {
        let error = forwardError(try tensor([1, 2, 8, 16]), try tensor([1, 2, 8, 16]), try tensor([1, 2, 9, 16]))
        #expect(error == .mismatchedDimension(name: "sequence length", expected: 8, actual: 9, tensor: "value"))
    }

    @Test func headsNotDivisible() throws {
        let error = forwardError(try tensor([1, 6, 8, 16]), try tensor([1, 4, 8, 16]), try tensor([1, 4, 8, 16]))
        #expect(error == .headsNotDivisible(queryHeads: 6, keyValueHeads: 4))
    }

    @Test func mixedDTypes() throws {
        let error = forwardError(
            try tensor([1, 2, 8, 16]), try tensor([1, 2, 8, 16], .float16), try tensor([1, 2, 8, 16]))
        #expect(error == .mixedDTypes(expected: .float32, actual: .float16, tensor: "key"))
    }

    @Test func headDimOutOfRange() throws {
        let error = forwardError(try tensor([1, 1, 2, 513]), try tensor([1, 1, 2, 513]), try tensor([1, 1, 2, 8]))
        #expect(error == .unsupportedHeadDimension(513, supported: 1...512))
    }

    @Test func invalidScale() throws {
        let q = try tensor([1, 1, 4, 8])
        #expect(forwardError(q, q, q, options: .init(scale: .nan)) != nil)
        #expect(forwardError(q, q, q, options: .init(scale: .infinity)) == .invalidScale(.infinity))
    }

    @Test func zeroSizes() throws {
        // Empty batches and lengths are attention problems (EmptyAttentionTests); heads are needed.
        let q = try tensor([1, 1, 4, 8])
        let noHeads = try Tensor(zeros: [1, 0, 4, 8])
        #expect(forwardError(q, noHeads, noHeads) == .nonPositiveDimension(tensor: "key", shape: [1, 0, 4, 8]))
        #expect(forwardError(noHeads, q, q) == .nonPositiveDimension(tensor: "query", shape: [1, 0, 4, 8]))
        #expect(throws: FlexAttentionError.nonPositiveDimension(tensor: "tensor", shape: [1, -1, 4, 8])) {
            try Tensor(zeros: [1, -1, 4, 8])
        }
        let storage = try #require(TensorStorage(zeroedByteCount: 64))
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [1, 1, -2, 4], strides: [16, 16, 4, 1])
        }
    }

    @Test func stridesLeavingTheBuffer() throws {
        let storage = try #require(TensorStorage(zeroedByteCount: 4 * 64))
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [1, 2, 4, 8], strides: [64, 40, 8, 1])
        }
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [1, 1, 8, 8], strides: [64, 64, 8, 1], offset: 1)
        }
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [1, 1, 8, 8], strides: [64, 64, -8, 1])
        }
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [2, 2], strides: [Int.max / 2, 1])
        }
        let fits = try Tensor(storage: storage, dtype: .float32, shape: [1, 1, 8, 8], strides: [64, 64, 8, 1])
        #expect(fits.elementCount == 64)
    }

    @Test func valueCountMismatch() {
        #expect(throws: FlexAttentionError.elementCountMismatch(expected: 8, actual: 7)) {
            try Tensor([Float](repeating: 1, count: 7), shape: [2, 4])
        }
    }

    @Test func backwardShapesAndDTypes() throws {
        let q = try tensor([1, 2, 8, 16])
        let attention = Attention()
        let forward = try attention.forward(query: q, key: q, value: q)
        let wrongOutputGradient = try tensor([1, 2, 8, 8])
        #expect(throws: FlexAttentionError.self) {
            try attention.backward(query: q, key: q, value: q, forward: forward, outputGradient: wrongOutputGradient)
        }
        let halfLSE = AttentionOutput(
            output: forward.output, logSumExp: try Tensor(forward.logSumExp.floats(), shape: [1, 2, 8], dtype: .float16))
        #expect(throws: FlexAttentionError.mixedDTypes(expected: .float32, actual: .float16, tensor: "log-sum-exp")) {
            try attention.backward(query: q, key: q, value: q, forward: halfLSE, outputGradient: q)
        }
    }

    @Test func maskReadingATableOutOfBounds() throws {
        let q = try tensor([1, 1, 20, 8])
        let table = try ModTable(name: "doc", shape: [10], elements: .int32(Array(repeating: 0, count: 10)))
        let mask = try MaskMod(parsing: "doc[q] == doc[kv]", tables: [table])
        #expect(throws: (any Error).self) {
            try Attention().forward(query: q, key: q, value: q, options: .init(mask: mask))
        }
    }

    @Test func scoreModIndexingPastItsTable() throws {
        let bias = try FloatTable(name: "bias", values: [0, 0.5, 1], shape: [3])
        let options = AttentionOptions(scoreMod: ScoreMod { score, _, _, q, kv in score + bias[q - kv] })
        let (q, k, v) = (try tensor([1, 1, 5, 8]), try tensor([1, 1, 5, 8]), try tensor([1, 1, 5, 8]))
        let expected = ModError.tableIndexOutOfRange(table: "bias", axis: 0, index: 3, extent: 3, at: [0, 0, 3, 0])
        #expect(throws: expected) { try Attention().forward(query: q, key: k, value: v, options: options) }
        // A saved forward result carries no options, so backward checks the ones it is given.
        let computed = try Attention().forward(query: q, key: k, value: v)
        let saved = AttentionOutput(output: computed.output, logSumExp: computed.logSumExp)
        #expect(throws: expected) {
            try Attention().backward(query: q, key: k, value: v, forward: saved, outputGradient: q, options: options)
        }
    }
}
