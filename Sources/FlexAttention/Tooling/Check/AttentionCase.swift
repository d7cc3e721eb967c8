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

    /// Cases whose kernels walk more key (or query) blocks than the pipeline has stages, so every stage is
    /// reused and every kernel has several tiles of each kind, and cases with two to three times more tiles than an
    /// H100 has multiprocessors, so each persistent CTA runs several: the forward and backward checks both run them.
    var longWalks: [AttentionCase] {
        [
            AttentionCase(label: "bf16 D=64 causal S=1100 (long walk)", dtype: .bfloat16,
                          shape: (1, 2, 1, 1100, 1100, 64, 64), options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=128 Sq=700 Skv=1000 (long walk)", dtype: .float16,
                          shape: (1, 2, 2, 700, 1000, 128, 128)),
            AttentionCase(label: "bf16 D=256 causal S=600 (long walk)", dtype: .bfloat16,
                          shape: (1, 1, 1, 600, 600, 256, 256), options: .init(isCausal: true)),
            AttentionCase(label: "bf16 D=128 GQA 32:8 B=2 S=520 causal (more tiles than SMs)", dtype: .bfloat16,
                          shape: (2, 32, 8, 520, 520, 128, 128), options: .init(isCausal: true)),
            AttentionCase(label: "fp16 D=64 B=3 H=32 S=400 (more tiles than SMs)", dtype: .float16,
                          shape: (3, 32, 32, 400, 400, 64, 64)),
        ]
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

    /// The GPU's forward pass on host tensors, without `Attention`'s scan for non-finite rows.
    func gpuForward(query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions) throws -> AttentionOutput {
        try CUDAHostAttention(device: device, cache: cache).forward(
            AttentionProblem(shape: AttentionShape(query: query, key: key, value: value), options: options),
            query: query, key: key, value: value)
    }

    /// The GPU's backward pass on host tensors, without `Attention`'s scan for non-finite rows.
    func gpuBackward(
        query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput, outputGradient: Tensor,
        options: AttentionOptions
    ) throws -> AttentionGradients {
        try CUDAHostAttention(device: device, cache: cache).backward(
            AttentionProblem(shape: AttentionShape(query: query, key: key, value: value), options: options),
            query: query, key: key, value: value, forward: forward, outputGradient: outputGradient)
    }
}
