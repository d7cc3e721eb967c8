/// A plan's attention sinks on the device: the logits, uploaded once, and the two kernels that use them, loaded
/// (``SinkForwardKernel`` after the forward kernel, ``SinkGradientKernel`` beside the backward's Delta).
final class SinkProgram: Sendable {
    /// Float32 `[Hq]`, rewritten in place by ``update(_:stream:)``.
    let logits: DeviceBuffer
    let forward: LoadedKernel<SinkForwardOperands>
    /// Nil for a plan without its backward.
    let gradient: LoadedKernel<SinkGradientOperands>?
    let shape: AttentionShape

    /// - Parameter sinks: one checked logit per query head (``AttentionSinks/check(_:queryHeads:)``).
    init(_ sinks: [Float], shape: AttentionShape, includesBackward: Bool, cache: KernelCache, device: CUDADevice) throws {
        self.shape = shape
        logits = try DeviceBuffer(device: device, copying: sinks)
        let rows = shape.logSumExpShape.reduce(1, *)
        forward = LoadedKernel(
            function: try cache.function(for: SinkForwardKernel(dtype: shape.dtype), on: device),
            signature: SinkForwardKernel.signature(shape.dtype),
            grid: ((rows + SinkForwardKernel.rowsPerBlock - 1) / SinkForwardKernel.rowsPerBlock, 1, 1),
            block: SinkForwardKernel.threads)
        gradient = try includesBackward ? LoadedKernel(
            function: cache.function(for: SinkGradientKernel(), on: device), signature: SinkGradientKernel.signature,
            grid: (shape.queryHeads, 1, 1), block: SinkGradientKernel.threads) : nil
    }

    /// Queues the sinks' join into a checked forward result, in place.
    func enqueueForward(into result: DeviceAttentionOutput, on stream: CUDAStream) throws {
        try forward.enqueue(
            SinkForwardOperands(
                output: TensorOperand(result.output), logSumExp: result.logSumExp.address, sinks: logits.address,
                queryHeads: shape.queryHeads, queryLength: shape.queryLength, valueDim: shape.valueDim,
                rows: shape.logSumExpShape.reduce(1, *)),
            on: stream)
    }

    /// Queues `∂loss/∂sink` into `sinkGradient` (checked: contiguous Float32 `[Hq]`) from the sink-adjusted
    /// log-sum-exp and the backward's Delta; after the Delta kernel, on the same stream.
    func enqueueGradient(
        logSumExp: DeviceTensor, delta: DeviceBuffer, into sinkGradient: DeviceTensor, on stream: CUDAStream
    ) throws {
        guard let gradient else { throw AttentionPlan.withoutBackward }
        try gradient.enqueue(
            SinkGradientOperands(
                logSumExp: logSumExp.address, delta: delta.address, sinks: logits.address,
                sinkGradient: sinkGradient.address, batch: shape.batch, queryHeads: shape.queryHeads,
                queryLength: shape.queryLength),
            on: stream)
    }

    /// Writes new checked logits over the old, in order on `stream` (a pageable copy, staged before this returns).
    func update(_ sinks: [Float], stream: CUDAStream) throws {
        try sinks.withUnsafeBytes { try logits.copy(from: $0, stream: stream) }
    }
}
