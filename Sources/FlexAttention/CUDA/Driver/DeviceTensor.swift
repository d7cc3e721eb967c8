/// A strided view over a ``DeviceBuffer``: the device twin of ``Tensor``, with the same dtype, shape, strides and
/// offset conventions, so BHSD and BSHD layouts and permuted views work without copies.
public struct DeviceTensor: Sendable {
    /// The element type.
    public let dtype: DType
    /// The logical extent of each axis (`[B, H, S, D]` for attention).
    public let shape: [Int]
    /// Elements between neighbours along each axis.
    public let strides: [Int]
    /// Index, in elements, of the first element within the buffer.
    public let offset: Int
    /// The device memory the view reads.
    public let buffer: DeviceBuffer

    /// A view over an existing buffer (allocated here or wrapped with ``DeviceBuffer/init(unowned:byteCount:device:)``),
    /// checked to stay inside it.
    public init(buffer: DeviceBuffer, dtype: DType, shape: [Int], strides: [Int], offset: Int = 0) throws {
        let span = try elementSpan(shape: shape, strides: strides, offset: offset)
        guard span.lowerBound >= 0, span.upperBound < buffer.byteCount / dtype.byteSize else {
            throw CUDAError.invalidArgument(
                "a device view of shape \(shape), strides \(strides), offset \(offset) reaches elements \(span)"
                    + " of a buffer of \(buffer.byteCount / dtype.byteSize) \(dtype) elements")
        }
        self.buffer = buffer
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A new tensor of logical shape `shape` over freshly allocated, uninitialised device memory, laid out as
    /// `layout` with the same strides ``Tensor/init(zeros:dtype:layout:)`` gives, so an output can be allocated
    /// in the layout its consumer expects.
    ///
    /// With a `stream` the memory is allocated and freed in stream order
    /// (``DeviceBuffer/init(device:byteCount:stream:)``, whose ordering rules apply), which is what work captured
    /// into a ``CUDAGraph`` needs; without one it is allocated at once and freed synchronously.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when an extent is not positive, the byte count overflows, or a
    ///   BSHD shape is not rank 4; ``CUDAError/outOfMemory(call:bytes:)`` when the device has no room.
    public init(
        device: CUDADevice, dtype: DType, shape: [Int], layout: TensorLayout = .bhsd, stream: CUDAStream? = nil
    ) throws {
        guard shape.allSatisfy({ $0 > 0 }) else {
            throw CUDAError.invalidArgument(
                "cannot allocate a device tensor of shape \(shape): extents must be positive")
        }
        var byteCount = dtype.byteSize
        for extent in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: extent)
            guard !overflow else {
                throw CUDAError.invalidArgument("a device tensor of shape \(shape) of \(dtype) has too many bytes")
            }
            byteCount = product
        }
        guard let strides = Tensor.strides(shape, layout: layout) else {
            throw CUDAError.invalidArgument("a BSHD device tensor needs 4 axes, not shape \(shape)")
        }
        let buffer = if let stream {
            try DeviceBuffer(device: device, byteCount: byteCount, stream: stream)
        } else {
            try DeviceBuffer(device: device, byteCount: byteCount)
        }
        try self.init(buffer: buffer, dtype: dtype, shape: shape, strides: strides)
    }

    /// Copies a host tensor to the device, keeping its strides: the elements its view reaches are copied as one
    /// block, so a BSHD tensor stays BSHD.
    public init(copying tensor: Tensor, to device: CUDADevice) throws {
        let span = try elementSpan(shape: tensor.shape, strides: tensor.strides, offset: tensor.offset)
        let size = tensor.dtype.byteSize
        let buffer = try DeviceBuffer(device: device, byteCount: span.count * size)
        try buffer.copy(
            from: UnsafeRawBufferPointer(start: tensor.storage.baseAddress + span.lowerBound * size, count: buffer.byteCount))
        try self.init(
            buffer: buffer, dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides,
            offset: tensor.offset - span.lowerBound)
    }

    /// Copies the view back to a new host tensor with the same strides.
    public func copyToHost() throws -> Tensor {
        let span = try elementSpan(shape: shape, strides: strides, offset: offset)
        let size = dtype.byteSize
        guard let storage = TensorStorage(zeroedByteCount: span.count * size) else {
            throw CUDAError.outOfMemory(call: "calloc (host copy)", bytes: span.count * size)
        }
        try buffer.copy(
            to: UnsafeMutableRawBufferPointer(start: storage.baseAddress, count: storage.byteCount),
            fromOffset: span.lowerBound * size)
        return try Tensor(
            storage: storage, dtype: dtype, shape: shape, strides: strides, offset: offset - span.lowerBound)
    }

    /// The same elements with the axes reordered: axis `i` of the result is axis `order[i]` of this view.
    public func permuted(_ order: [Int]) throws -> DeviceTensor {
        guard order.sorted() == Array(shape.indices) else {
            throw CUDAError.invalidArgument("\(order) is not a permutation of the axes of shape \(shape)")
        }
        return try DeviceTensor(
            buffer: buffer, dtype: dtype, shape: order.map { shape[$0] }, strides: order.map { strides[$0] },
            offset: offset)
    }

    /// The device address of the first element, for a kernel argument.
    public var address: UInt64 { buffer.address + UInt64(offset * dtype.byteSize) }
}

/// The lowest and highest element index a view reaches.
func elementSpan(shape: [Int], strides: [Int], offset: Int) throws -> ClosedRange<Int> {
    guard shape.count == strides.count, shape.allSatisfy({ $0 > 0 }),
          let span = stridedSpan(shape: shape, strides: strides, offset: offset)
    else {
        throw CUDAError.invalidArgument(
            "shape \(shape) and strides \(strides) do not describe a view (ranks, empty axes or overflow)")
    }
    return span
}
