@testable import FlexAttention
import Testing

@Suite("CPU forward against the Float64 reference")
struct ForwardTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var b = 1, hq = 2, hkv = 2, sq = 37, skv = 37, d = 16, dv = 16
        var causal = false
        var dtype = DType.float32
        var layout = TensorLayout.bhsd
        /// Fresh random Q, K, V of this case's shapes, dtype and layout.
        func inputs(_ rng: inout SeededRandom) throws -> (q: Tensor, k: Tensor, v: Tensor) {
            (try randomTensor([b, hq, sq, d], dtype: dtype, layout: layout, rng: &rng),
             try randomTensor([b, hkv, skv, d], dtype: dtype, layout: layout, rng: &rng),
             try randomTensor([b, hkv, skv, dv], dtype: dtype, layout: layout, rng: &rng))
        }

        var testDescription: String {
            "B\(b) Hq\(hq) Hkv\(hkv) Sq\(sq) Skv\(skv) D\(d) Dv\(dv) \(causal ? "causal " : "")\(dtype) \(layout)"
        }
    }

    static let cases: [Case] = [
        Case(b: 2, hq: 3, hkv: 3, sq: 203, skv: 203, d: 80, dv: 80),
        Case(b: 1, hq: 4, hkv: 1, sq: 65, skv: 130, d: 64, dv: 32, causal: true),
        Case(b: 1, hq: 4, hkv: 2, sq: 150, skv: 70, d: 192, dv: 96, causal: true),
        Case(b: 1, hq: 2, hkv: 2, sq: 1, skv: 257, d: 7, dv: 3),
        Case(b: 2, hq: 2, hkv: 1, sq: 129, skv: 129, d: 128, dv: 128, causal: true, layout: .bshd),
        Case(b: 1, hq: 2, hkv: 2, sq: 100, skv: 77, d: 96, dv: 96, dtype: .float16),
        Case(b: 1, hq: 2, hkv: 1, sq: 90, skv: 90, d: 64, dv: 48, causal: true, dtype: .bfloat16, layout: .bshd),
        Case(b: 1, hq: 1, hkv: 1, sq: 33, skv: 40, d: 512, dv: 1),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let seed = freshSeed()
        var rng = SeededRandom(seed: seed)
        let (q, k, v) = try c.inputs(&rng)
        let result = try Attention().forward(
            query: q, key: k, value: v, options: .init(isCausal: c.causal), outputDType: .float32)
        let reference = ReferenceAttention(query: q, key: k, value: v, keep: { _, _, i, j in !c.causal || i >= j })
            .forward()
        let error = relativeError(result.output.floats(), reference.o)
        #expect(error < tolerance(c.dtype), "seed \(seed)")
        let lse = result.logSumExp.floats()
        let lseError = logSumExpError(lse, reference.lse)
        #expect(lseError < 1e-5, "seed \(seed)")
    }
}
