@testable import FlexAttention
import Testing

/// Zero-length axes (an empty KV cache): representable wherever the math is defined.
@Suite("Empty tensors")
struct TensorEmptyTests {
    @Test("creation in every dtype and layout gives no elements", arguments: DType.allCases)
    func creation(dtype: DType) throws {
        for layout in [TensorLayout.bhsd, .bshd] {
            let tensor = try Tensor(zeros: [1, 2, 0, 8], dtype: dtype, layout: layout)
            #expect(tensor.shape == [1, 2, 0, 8] && tensor.elementCount == 0 && tensor.floats() == [])
            #expect(try Tensor([], shape: [2, 0, 3, 1], dtype: dtype, layout: layout).floats() == [])
            #expect(try Tensor.random(shape: [0, 2, 3, 4], dtype: dtype, layout: layout, seed: freshSeed()).floats() == [])
        }
        #expect(throws: FlexAttentionError.elementCountMismatch(expected: 0, actual: 1)) {
            try Tensor([1], shape: [0, 3])
        }
        #expect(throws: FlexAttentionError.self) { try Tensor(zeros: [0, 2]).float(at: [0, 0]) }
        #expect(try Tensor(zeros: [Int.max, 0]).elementCount == 0)
    }

    @Test("an empty view stays empty through views, conversion and copies")
    func operations() throws {
        let seed = freshSeed()
        let tensor = try Tensor.random(shape: [2, 3, 4], dtype: .bfloat16, seed: seed)
        let empty = try tensor.narrowed(axis: 1, range: 3..<3)
        #expect(empty.shape == [2, 0, 4] && empty.floats() == [] && empty.storage === tensor.storage)
        #expect(try empty.converted(to: .float32).floats() == [])
        #expect(try empty.reshaped([0]).shape == [0])
        #expect(try empty.contiguous().floats() == [])
        #expect(try empty.narrowed(axis: 2, range: 1..<3).shape == [2, 0, 2])
        let before = tensor.floats()
        try empty.copy(from: Tensor(zeros: [2, 0, 4]))
        #expect(tensor.floats() == before, "seed \(seed)")
        #expect(try Tensor(float16: [], shape: [0]).float16Values() == [])
    }

    @Test("empty views over storage check their offset only")
    func storageViews() throws {
        let storage = try #require(TensorStorage(zeroedByteCount: 64))
        #expect(try Tensor(storage: storage, dtype: .float32, shape: [1, 0, 4], strides: [16, 4, 1], offset: 16)
            .floats() == [])
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [1, 0, 4], strides: [16, 4, 1], offset: 17)
        }
        #expect(throws: FlexAttentionError.self) {
            try Tensor(storage: storage, dtype: .float32, shape: [0, -1], strides: [1, 1])
        }
    }

    @Test("NumPy arrays with a zero extent become empty tensors")
    func numPy() throws {
        let tensor = try NumPyArray(shape: [3, 0, 2], elements: .float32([])).tensor()
        #expect(tensor.shape == [3, 0, 2] && tensor.floats() == [])
        #expect(NumPyArray(tensor) == (try NumPyArray(shape: [3, 0, 2], elements: .float32([]))))
    }
}
