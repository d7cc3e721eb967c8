@testable import FlexAttention
import Testing

@Suite("Tensor description")
struct TensorDescriptionTests {
    @Test("shape, dtype and the first six values")
    func plain() throws {
        #expect(try Tensor([1.5, -2, 0.25], shape: [3]).description == "Tensor([3], float32) [1.5, -2.0, 0.25]")
        let eight = try Tensor((0..<8).map(Float.init), shape: [2, 4], dtype: .bfloat16)
        #expect(eight.description == "Tensor([2, 4], bfloat16) [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, …]")
        #expect(try Tensor(zeros: [0, 3]).description == "Tensor([0, 3], float32) []")
    }

    @Test("BSHD and other strided views say so, and list values in logical order")
    func strided() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let bshd = try Tensor(values, shape: [1, 2, 3, 1], dtype: .float16, layout: .bshd)
        #expect(bshd.description == "Tensor([1, 2, 3, 1], float16, bshd) [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]")
        let transposed = try Tensor(values, shape: [2, 3]).permuted([1, 0])
        #expect(transposed.description == "Tensor([3, 2], float32, strides [1, 3]) [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]")
    }
}
