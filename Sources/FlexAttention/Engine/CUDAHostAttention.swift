/// The host-tensor convenience behind `Attention(device: .cuda(n))`: copies the tensors to the device, runs an
/// ``AttentionPlan`` made for the call on a stream of its own, waits, and copies the results back.
///
/// The plan runs without the options' sinks: ``Attention`` joins them on the host (``AttentionSinks``) after the
/// non-finite rows are set, as on the CPU, so every device gives the same sink-adjusted results and the same
/// Float64 sink gradient.
struct CUDAHostAttention {
    let device: CUDADevice
    let cache: KernelCache

    func forward(_ problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor) throws -> AttentionOutput {
        let plan = try AttentionPlan(problem.withoutSinks, device: device, includesBackward: false, cache: cache)
        let stream = try CUDAStream(device: device)
        let result = try plan.forward(
            query: DeviceTensor(copying: query, to: device), key: DeviceTensor(copying: key, to: device),
            value: DeviceTensor(copying: value, to: device), on: stream)
        try stream.synchronize()
        return AttentionOutput(output: try result.output.copyToHost(), logSumExp: try result.logSumExp.copyToHost())
    }

    /// The gradients in the inputs' dtype.
    func backward(
        _ problem: AttentionProblem, query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput,
        outputGradient: Tensor
    ) throws -> AttentionGradients {
        let shape = problem.shape
        let plan = try AttentionPlan(problem.withoutSinks, device: device, includesBackward: true, cache: cache)
        // The kernels read O and dO in the inputs' dtype and the LSE as contiguous Float32.
        func upload(_ tensor: Tensor, as dtype: DType) throws -> DeviceTensor {
            try DeviceTensor(copying: tensor.dtype == dtype ? tensor : tensor.converted(to: dtype), to: device)
        }
        let stream = try CUDAStream(device: device)
        let gradients = try plan.backward(
            query: upload(query, as: shape.dtype), key: upload(key, as: shape.dtype), value: upload(value, as: shape.dtype),
            forward: DeviceAttentionOutput(
                output: upload(forward.output, as: shape.dtype), logSumExp: DeviceTensor(copying: forward.logSumExp.contiguousFloat32(), to: device)),
            outputGradient: upload(outputGradient, as: shape.dtype), on: stream)
        try stream.synchronize()
        return AttentionGradients(
            query: try gradients.query.copyToHost(), key: try gradients.key.copyToHost(),
            value: try gradients.value.copyToHost(),
            tableGradients: try gradients.tableGradients.mapValues { try $0.copyToHost() })
    }
}
