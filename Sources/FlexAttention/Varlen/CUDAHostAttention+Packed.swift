/// Packed sequences behind `Attention(device: .cuda(n))` when every input is finite: the packed tensors copied to
/// the device once, a ``PackedAttentionPlan`` made for the call queueing every sequence on one stream, one wait, and
/// the packed results copied back.
extension CUDAHostAttention {
    /// O `[totalQ, Hq, Dv]` in the inputs' dtype and the log-sum-exp `[Hq, totalQ]`, without sinks.
    func forward(_ packed: PackedProblem, query: Tensor, key: Tensor, value: Tensor) throws -> (output: Tensor, logSumExp: Tensor) {
        let plan = try PackedAttentionPlan(packed, device: device, includesBackward: false, cache: cache)
        let stream = try CUDAStream(device: device)
        let result = try plan.forward(
            query: DeviceTensor(copying: query, to: device), key: DeviceTensor(copying: key, to: device),
            value: DeviceTensor(copying: value, to: device), on: stream)
        try stream.synchronize()
        return (try result.output.copyToHost(), try result.logSumExp.copyToHost())
    }

    /// The gradients in the inputs' dtype (table gradients in Float32), from a sink-adjusted `forward`.
    func backward(
        _ packed: PackedProblem, query: Tensor, key: Tensor, value: Tensor, forward: AttentionOutput,
        outputGradient: Tensor
    ) throws -> AttentionGradients {
        let plan = try PackedAttentionPlan(packed, device: device, includesBackward: true, cache: cache)
        let dtype = packed.whole.dtype
        // The kernels read O and dO in the inputs' dtype and the log-sum-exp as contiguous Float32.
        func upload(_ tensor: Tensor) throws -> DeviceTensor {
            try DeviceTensor(copying: tensor.dtype == dtype ? tensor : tensor.converted(to: dtype), to: device)
        }
        let stream = try CUDAStream(device: device)
        let gradients = try plan.backward(
            query: upload(query), key: upload(key), value: upload(value),
            forward: DeviceAttentionOutput(
                output: upload(forward.output),
                logSumExp: DeviceTensor(copying: forward.logSumExp.contiguousFloat32(), to: device)),
            outputGradient: upload(outputGradient), on: stream)
        try stream.synchronize()
        return AttentionGradients(
            query: try gradients.query.copyToHost(), key: try gradients.key.copyToHost(),
            value: try gradients.value.copyToHost(),
            tableGradients: try gradients.tableGradients.mapValues { try $0.copyToHost() })
    }
}
