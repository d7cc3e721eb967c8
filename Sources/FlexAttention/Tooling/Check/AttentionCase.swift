/// One attention problem of the conformance suite: shapes, dtype, layout and options.
extension CUDAConformance {
    /// Shapes are (batch, query heads, key/value heads, query length, key length, head dim, value dim).
    struct AttentionCase {
        var label: String
        var dtype: DType
        var shape: (b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int)
        var layout: TensorLayout = .bhsd
        var options = AttentionOptions()
    }

    /// Random inputs of a case's shapes: Q, K, V and dO.
    func inputs(_ testCase: AttentionCase, _ random: inout SplitMix64) throws -> [Tensor] {
        let s = testCase.shape
        return try [[s.b, s.hq, s.sq, s.d], [s.b, s.hkv, s.skv, s.d], [s.b, s.hkv, s.skv, s.dv], [s.b, s.hq, s.sq, s.dv]]
            .map { shape in
                let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &random) }
                return try Tensor(values, shape: shape, dtype: testCase.dtype, layout: testCase.layout)
            }
    }
}
