/// A CUDA stream: work queued on it runs in order, and concurrently with other streams. Destroyed with its last
/// reference (after its queued work completes, as the driver does).
public final class CUDAStream: Sendable {
    public let device: CUDADevice
    let address: UInt  // the CUstream, kept as an integer so the class is Sendable

    /// A new stream that does not synchronise with the legacy default stream.
    public init(device: CUDADevice) throws {
        self.device = device
        try device.bind()
        var stream: CUstream?
        try device.api.check(device.api.cuStreamCreate(&stream, 1), "cuStreamCreate(CU_STREAM_NON_BLOCKING)")
        address = UInt(bitPattern: stream)
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
        if (try? device.bind()) != nil { _ = device.api.cuStreamDestroy(handle) }
    }
}

/// A CUDA event, for ordering and timing work on streams.
public final class CUDAEvent: Sendable {
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
