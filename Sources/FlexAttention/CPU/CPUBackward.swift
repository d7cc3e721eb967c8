struct CPUBackward {
    let shape: AttentionShape
    let scale: Float
    let masking: any TileMasking
    let query: Tensor
    let key: Tensor
    let value: Tensor
    let output: Tensor
    let logSumExp: Tensor
    let outputGradient: Tensor
    let gradientDType: DType

    func run() throws -> AttentionGradients {
        throw FlexAttentionError.invalidArgument("todo")
    }
}
