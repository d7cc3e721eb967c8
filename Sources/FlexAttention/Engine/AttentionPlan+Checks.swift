/// What every call checks before it queues anything: the tensors' device, shape, dtype and, for what the kernels
/// write contiguously, layout.
extension AttentionPlan {
    /// Checks that `stream` is on the plan's device.
    func check(stream: CUDAStream) throws {
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "the stream is on CUDA device \(stream.device.ordinal), the plan on \(device.ordinal)")
        }
    }

    /// Checks Q, K and V against the plan's shape and device.
    func checkInputs(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, stream: CUDAStream) throws {
        try check(stream: stream)
        let given = try AttentionShape(query: query, key: key, value: value)
        try check(query, named: "query")
        guard given == shape else {
            throw FlexAttentionError.invalidArgument("the inputs form \(given), the plan was made for \(shape)")
        }
    }

    /// Checks a tensor the plan reads or writes: its device, `shape` and `dtype`, and with `contiguous` that it is
    /// laid out densely in row-major order (what the kernels write without strides).
    func check(
        _ tensor: DeviceTensor, named name: String, shape expected: [Int]? = nil, dtype: DType? = nil,
        contiguous: Bool = false
    ) throws {
        try tensor.check(named: name, device: device, shape: expected, dtype: dtype, contiguous: contiguous)
    }

    /// Checks that no tensor in `written` shares a byte with a tensor in `read` or with another in `written` (empty
    /// tensors share nothing): the backward's kernels read their inputs while they write the gradients (dQ's rounding
    /// overlaps the dK/dV kernel), so a shared byte would race.
    func checkApart(written: [(name: String, tensor: DeviceTensor)], read: [(name: String, tensor: DeviceTensor)]) throws {
        let spans = try (written + read).map { ($0.name, $0.tensor.shape.contains(0) ? nil : try $0.tensor.byteSpan()) }
        for (index, (name, span)) in spans.prefix(written.count).enumerated() {
            guard let span else { continue }
            for (other, otherSpan) in spans[(index + 1)...] where otherSpan?.overlaps(span) == true {
                throw FlexAttentionError.invalidArgument("the \(name) shares memory with the \(other)")
            }
        }
    }

    /// Checks `O` and its log-sum-exp, given to the forward pass to write or to the backward pass to read.
    func check(forward: DeviceAttentionOutput) throws {
        try check(forward.output, named: "output", shape: shape.outputShape, dtype: shape.dtype)
        try check(
            forward.logSumExp, named: "log-sum-exp", shape: shape.logSumExpShape, dtype: .float32, contiguous: true)
    }
}

extension DeviceTensor {
    /// Checks a tensor a plan on `device` reads or writes: its device, `shape` and `dtype`, and with `contiguous` that
    /// it is laid out densely in row-major order (what the kernels write without strides).
    func check(
        named name: String, device: CUDADevice, shape expected: [Int]? = nil, dtype: DType? = nil,
        contiguous: Bool = false
    ) throws {
        guard buffer.device === device else {
            throw FlexAttentionError.invalidArgument(
                "\(name) is on CUDA device \(buffer.device.ordinal), the plan on \(device.ordinal)")
        }
        if let expected { try AttentionShape.require(shape: shape, named: name, expected: expected) }
        if let dtype, self.dtype != dtype {
            throw FlexAttentionError.mixedDTypes(expected: dtype, actual: self.dtype, tensor: name)
        }
        if contiguous && strides != Tensor.contiguousStrides(shape) {
            throw FlexAttentionError.invalidArgument(
                "\(name) must be contiguous (strides \(Tensor.contiguousStrides(shape))), not strides \(strides)")
        }
    }
}
