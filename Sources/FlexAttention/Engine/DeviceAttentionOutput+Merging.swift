/// Attention over a union of disjoint key sets from the attention over each set, on the device: what split-KV
/// decoding, cascade (shared-prefix) attention and ring attention combine.
extension DeviceAttentionOutput {
    /// Queues the merge of results computed over disjoint sets of keys for the same queries into the result over all
    /// of them, on `stream`, into new tensors, and returns without waiting: the device counterpart of
    /// ``AttentionOutput/merging(_:)``, with the same rules.
    ///
    /// Per row, `LSE = log Σᵢ exp(LSEᵢ)` and `O = Σᵢ exp(LSEᵢ − LSE) · Oᵢ`, summed in Float32 in the parts' order, so
    /// the same parts give the same bits on every run. A part whose row keeps nothing (LSE −∞) adds nothing to it; a
    /// row that no part keeps gives O = 0 and LSE = −∞; a row with a NaN (or +∞) LSE in any part gives NaN.
    ///
    /// One kernel launch merges up to eight parts; more are merged eight, then seven more at a time into a Float32
    /// running result (stream-ordered scratch, freed on `stream`), which rounds once per launch.
    ///
    /// - Parameters:
    ///   - parts: at least one result, on `stream`'s device: outputs `[B, Hq, Sq, Dv]` of equal shapes in any dtypes
    ///     and strides, and Float32 log-sum-exps `[B, Hq, Sq]` of any strides.
    ///   - stream: where the work is queued, and the new tensors allocated and later freed (stream-ordered).
    /// - Returns: O (contiguous, the first part's dtype) and its log-sum-exp (contiguous Float32), valid once the
    ///   queued work has run.
    /// - Throws: ``FlexAttentionError`` when there are no parts, their shapes differ, a log-sum-exp is not Float32,
    ///   or a tensor is on another device; ``CUDAError`` for no memory or a failed launch. Nothing is queued when the
    ///   parts are refused.
    public static func merging(
        _ parts: [DeviceAttentionOutput], on stream: CUDAStream
    ) throws -> DeviceAttentionOutput {
        let first = try checkMerge(parts, on: stream)
        func allocate(_ dtype: DType, _ shape: [Int]) throws -> DeviceTensor {
            try DeviceTensor(device: stream.device, dtype: dtype, shape: shape, stream: stream)
        }
        let merged = DeviceAttentionOutput(
            output: try allocate(first.output.dtype, first.output.shape),
            logSumExp: try allocate(.float32, first.logSumExp.shape))
        try enqueueMerge(parts, into: merged, on: stream)
        return merged
    }

    /// Queues the merge of `parts` on `stream` into caller-provided tensors, so that it can be captured in a
    /// ``CUDAGraph`` (with more than eight parts, its Float32 scratch is a stream-ordered allocation and free of
    /// the graph's own).
    ///
    /// The merged tensors may be one part's own (the same views: each element is read before it is written), to
    /// merge in place; otherwise they must not overlap any part.
    ///
    /// The first merge on a device loads the merge kernel (compiled once per machine, then found in the disk
    /// cache): make one before a capture, as a plan is made before one.
    ///
    /// - Parameters:
    ///   - parts: as for ``merging(_:on:)``.
    ///   - merged: O of the parts' shape in any dtype and strides, and a contiguous Float32 log-sum-exp.
    ///   - stream: where the work is queued.
    /// - Throws: as ``merging(_:on:)``, and ``FlexAttentionError`` for merged tensors of other shapes, a log-sum-exp
    ///   that is not contiguous Float32, or merged tensors that overlap a part other than as its own views.
    public static func merging(
        _ parts: [DeviceAttentionOutput], into merged: DeviceAttentionOutput, on stream: CUDAStream
    ) throws {
        let first = try checkMerge(parts, on: stream)
        try check(merged.output, named: "the merged output", on: stream.device)
        try check(merged.logSumExp, named: "the merged log-sum-exp", on: stream.device)
        try AttentionShape.require(shape: merged.output.shape, named: "the merged output", expected: first.output.shape)
        try AttentionShape.require(
            shape: merged.logSumExp.shape, named: "the merged log-sum-exp", expected: first.logSumExp.shape)
        guard merged.logSumExp.dtype == .float32 else {
            throw FlexAttentionError.mixedDTypes(
                expected: .float32, actual: merged.logSumExp.dtype, tensor: "the merged log-sum-exp")
        }
        guard merged.logSumExp.strides == Tensor.contiguousStrides(merged.logSumExp.shape) else {
            throw FlexAttentionError.invalidArgument(
                "the merged log-sum-exp must be contiguous, not strides \(merged.logSumExp.strides)")
        }
        try checkOverlaps(parts, merged)
        try enqueueMerge(parts, into: merged, on: stream)
    }

    /// Checks the parts against each other and the stream's device; returns the first.
    private static func checkMerge(
        _ parts: [DeviceAttentionOutput], on stream: CUDAStream
    ) throws -> DeviceAttentionOutput {
        guard let first = parts.first else {
            throw FlexAttentionError.invalidArgument("merging needs at least one attention result")
        }
        let (outputShape, rowShape) = (first.output.shape, first.logSumExp.shape)
        guard outputShape.count == 4, rowShape == Array(outputShape.dropLast()) else {
            throw FlexAttentionError.invalidArgument(
                "an attention result has O \(outputShape) and LSE \(rowShape); expected [B, Hq, Sq, Dv] and [B, Hq, Sq]")
        }
        for (index, part) in parts.enumerated() {
            guard part.output.shape == outputShape, part.logSumExp.shape == rowShape else {
                throw FlexAttentionError.invalidArgument(
                    "part \(index) has O \(part.output.shape) and LSE \(part.logSumExp.shape),"
                        + " part 0 \(outputShape) and \(rowShape)")
            }
            try check(part.output, named: "part \(index)'s output", on: stream.device)
            try check(part.logSumExp, named: "part \(index)'s log-sum-exp", on: stream.device)
            guard part.logSumExp.dtype == .float32 else {
                throw FlexAttentionError.mixedDTypes(
                    expected: .float32, actual: part.logSumExp.dtype, tensor: "part \(index)'s log-sum-exp")
            }
        }
        return first
    }

    private static func check(_ tensor: DeviceTensor, named name: String, on device: CUDADevice) throws {
        guard tensor.buffer.device === device else {
            throw FlexAttentionError.invalidArgument(
                "\(name) is on CUDA device \(tensor.buffer.device.ordinal), the stream on \(device.ordinal)")
        }
    }

    /// Checks that each merged tensor is disjoint from every part's tensors, or one of them exactly, and that the two
    /// are disjoint.
    private static func checkOverlaps(_ parts: [DeviceAttentionOutput], _ merged: DeviceAttentionOutput) throws {
        let sources = parts.enumerated().flatMap { index, part in
            [("part \(index)'s output", part.output), ("part \(index)'s log-sum-exp", part.logSumExp)]
        }
        for (name, target) in [("the merged output", merged.output), ("the merged log-sum-exp", merged.logSumExp)] {
            let span = try target.byteSpan()
            for (source, tensor) in sources where !tensor.isSameView(as: target) {
                if try span.overlaps(tensor.byteSpan()) {
                    throw FlexAttentionError.invalidArgument("\(name) overlaps \(source) without being the same view")
                }
            }
        }
        if try merged.output.byteSpan().overlaps(merged.logSumExp.byteSpan()) {
            throw FlexAttentionError.invalidArgument("the merged output and log-sum-exp overlap")
        }
    }

    /// Queues the launches over checked tensors (``MergeKernel/launches(parts:)``).
    private static func enqueueMerge(
        _ parts: [DeviceAttentionOutput], into merged: DeviceAttentionOutput, on stream: CUDAStream
    ) throws {
        let device = stream.device
        let shape = merged.output.shape
        let rows = merged.logSumExp.shape.reduce(1, *)
        let kernel = LoadedKernel(
            function: try AttentionPlan.processCache.get().function(for: MergeKernel(), on: device),
            signature: MergeKernel.signature,
            grid: ((rows + MergeKernel.rowsPerBlock - 1) / MergeKernel.rowsPerBlock, 1, 1), block: MergeKernel.threads)
        let launches = MergeKernel.launches(parts: parts.count)
        // The running result between launches: Float32, so each launch rounds once. Freed on `stream` after the last.
        let running = try launches.count == 1 ? nil : DeviceAttentionOutput(
            output: DeviceTensor(device: device, dtype: .float32, shape: shape, stream: stream),
            logSumExp: DeviceTensor(device: device, dtype: .float32, shape: merged.logSumExp.shape, stream: stream))
        CUDAGraph.retainIfCapturing(parts.flatMap { [$0.output.buffer, $0.logSumExp.buffer] }
            + [merged.output.buffer, merged.logSumExp.buffer])
        for (index, range) in launches.enumerated() {
            let carried = index == 0 ? [] : running.map { [MergeRows($0)] } ?? []
            let target = index == launches.count - 1 ? merged : running ?? merged
            try kernel.enqueue(
                MergeOperands(
                    parts: carried + parts[range].map(MergeRows.init), merged: MergeRows(target), queryHeads: shape[1],
                    queryLength: shape[2], valueDim: shape[3], rows: rows),
                on: stream)
        }
        withExtendedLifetime(running) {}
    }
}

extension MergeKernel {
    /// The caller's parts each launch of a merge reads, in order: the first launch up to ``partsPerLaunch`` of them,
    /// each later one the running result and up to one fewer.
    static func launches(parts: Int) -> [Range<Int>] {
        var launches = [0..<min(parts, partsPerLaunch)]
        while let last = launches.last, last.upperBound < parts {
            launches.append(last.upperBound..<min(parts, last.upperBound + partsPerLaunch - 1))
        }
        return launches
    }
}

extension DeviceTensor {
    /// The device bytes from the view's first element to the end of its last.
    func byteSpan() throws -> Range<UInt64> {
        let span = try elementSpan(shape: shape, strides: strides, offset: offset)
        let size = UInt64(dtype.byteSize)
        return buffer.address + UInt64(span.lowerBound) * size..<buffer.address + UInt64(span.upperBound + 1) * size
    }

    /// Whether the two views read the same elements in the same order and dtype.
    func isSameView(as other: DeviceTensor) -> Bool {
        address == other.address && dtype == other.dtype && shape == other.shape && strides == other.strides
    }
}
