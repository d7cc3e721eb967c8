/// A CUDA stream: work queued on it runs in order, and concurrently with other streams.
///
/// A stream the library creates is destroyed with its last reference (after its queued work completes, as the
/// driver does). A stream wrapped with ``init(unowned:device:)`` belongs to another library and is never destroyed
/// here.
public final class CUDAStream: Sendable {
    /// The device the stream belongs to.
    public let device: CUDADevice
    /// The `CUstream` handle as an integer, for handing this stream to another library (PyTorch's
    /// `torch.cuda.ExternalStream` takes it). 0 is the legacy default stream.
    public let address: UInt  // kept as an integer so the class is Sendable
    private let ownsStream: Bool

    /// A new stream that does not synchronise with the legacy default stream.
    /// - Parameter highPriority: whether the GPU dispatches this stream's thread blocks ahead of those of streams of
    ///   normal priority whose kernels were queued first: for short work that must not wait behind a long kernel,
    ///   such as communication overlapped with computation.
    public init(device: CUDADevice, highPriority: Bool = false) throws {
        self.device = device
        try device.bind()
        let api = device.api
        var stream: CUstream?
        if highPriority {
            var (least, greatest): (Int32, Int32) = (0, 0)
            try api.check(api.cuCtxGetStreamPriorityRange(&least, &greatest), "cuCtxGetStreamPriorityRange")
            try api.check(api.cuStreamCreateWithPriority(&stream, 1, greatest),
                          "cuStreamCreateWithPriority(CU_STREAM_NON_BLOCKING, \(greatest))")
        } else {
            try api.check(api.cuStreamCreate(&stream, 1), "cuStreamCreate(CU_STREAM_NON_BLOCKING)")
        }
        address = UInt(bitPattern: stream)
        ownsStream = true
    }

    /// Wraps a stream another library owns, such as PyTorch's `torch.cuda.current_stream().cuda_stream`, so work
    /// queued here is ordered with that library's work on it. The library never destroys it; the caller keeps it
    /// alive for as long as this object, or anything holding it (a stream-ordered ``DeviceBuffer``), exists.
    ///
    /// `address` 0 is the legacy default stream, which PyTorch reports as the default stream's handle. The
    /// driver's special handles work too: 1 (`CU_STREAM_LEGACY`, the legacy default stream) and 2
    /// (`CU_STREAM_PER_THREAD`, the calling thread's default stream). The legacy default stream cannot be
    /// captured into a ``CUDAGraph``.
    public init(unowned address: UInt, device: CUDADevice) {
        self.device = device
        self.address = address
        ownsStream = false
    }

    var handle: CUstream? { CUstream(bitPattern: address) }

    /// Makes work queued on this stream from now on wait until `event`'s recorded work has finished.
    public func wait(for event: CUDAEvent) throws {
        try Self.wait(self, for: event)
    }

    /// ``wait(for:)`` for `stream`, the legacy default stream when nil.
    static func wait(_ stream: CUDAStream?, for event: CUDAEvent) throws {
        try event.device.bind()
        try event.device.api.check(event.device.api.cuStreamWaitEvent(stream?.handle, event.handle, 0), "cuStreamWaitEvent")
    }

    /// Blocks until everything queued so far has finished; reports a kernel's error.
    public func synchronize() throws {
        try device.bind()
        try device.api.check(device.api.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }

    deinit {
        // A failure here cannot be reported; the stream is gone either way.
        if ownsStream, (try? device.bind()) != nil { _ = device.api.cuStreamDestroy(handle) }
    }
}

/// A CUDA event, for ordering and timing work on streams.
public final class CUDAEvent: Sendable {
    /// The device the event belongs to.
    public let device: CUDADevice
    let address: UInt  // the CUevent

    /// A new event; one that does not record timing (`timing` false) is lighter for ordering streams.
    public init(device: CUDADevice, timing: Bool = true) throws {
        self.device = device
        try device.bind()
        var event: CUevent?
        try device.api.check(device.api.cuEventCreate(&event, timing ? 0 : 2), "cuEventCreate")  // 2: CU_EVENT_DISABLE_TIMING
        address = UInt(bitPattern: event)
    }

    var handle: CUevent? { CUevent(bitPattern: address) }

    /// Records the event after the work queued so far on `stream` (the default stream when nil).
    public func record(on stream: CUDAStream? = nil) throws {
        try device.bind()
        try device.api.check(device.api.cuEventRecord(handle, stream?.handle), "cuEventRecord")
    }

    /// Blocks until the recorded work has finished.
    public func synchronize() throws {
        try device.bind()
        try device.api.check(device.api.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds between `start` and this event, both recorded and completed.
    public func milliseconds(since start: CUDAEvent) throws -> Float {
        try device.bind()
        var elapsed: Float = 0
        try device.api.check(device.api.cuEventElapsedTime(&elapsed, start.handle, handle), "cuEventElapsedTime")
        return elapsed
    }

    deinit {
        if (try? device.bind()) != nil { _ = device.api.cuEventDestroy(handle) }
    }
}
