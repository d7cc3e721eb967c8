/// What every packed call checks before it queues anything: the stream's and tensors' device, shapes and dtypes.
extension PackedAttentionPlan {
    /// Checks Q `[totalQ, Hq, D]`, K `[totalK, Hkv, D]` and V `[totalK, Hkv, Dv]` (any strides) and the stream.
    func checkInputs(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, stream: CUDAStream) throws {
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "the stream is on CUDA device \(stream.device.ordinal), the plan on \(device.ordinal)")
        }
        for (name, tensor, shape) in [("query", query, packed.queryShape), ("key", key, packed.keyShape),
                                      ("value", value, packed.valueShape)] {
            try tensor.check(named: name, device: device, shape: shape, dtype: packed.whole.dtype)
        }
    }

    /// Checks `O` (`[totalQ, Hq, Dv]`, any strides) and its log-sum-exp (contiguous Float32 `[Hq, totalQ]`).
    func check(forward: DeviceAttentionOutput) throws {
        try forward.output.check(named: "output", device: device, shape: packed.outputShape, dtype: packed.whole.dtype)
        try forward.logSumExp.check(
            named: "log-sum-exp", device: device, shape: packed.logSumExpShape, dtype: .float32, contiguous: true)
    }
}
