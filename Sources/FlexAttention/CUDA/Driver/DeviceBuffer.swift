/// Bytes in device memory.
///
/// A buffer the library allocates frees itself with its last reference. A buffer that wraps memory another library
/// owns (a PyTorch tensor's data pointer, say) never frees it. All operations are safe from any thread; ordering
/// between operations on different streams is the caller's.
///
/// Copies with a `stream` are queued on it and return at once: the host memory must stay valid and unchanged until
/// the stream is synchronised. Copies without one complete before returning.
public final class DeviceBuffer: Sendable {
    /// The device the memory is on.
    public let device: CUDADevice
    /// The device address (a `CUdeviceptr`).
    public let address: UInt64
    /// The size in bytes.
    public let byteCount: Int
    private let ownership: Ownership

    /// Who frees the memory, and how.
    private enum Ownership {
        /// `cuMemAlloc`: freed with `cuMemFree`.
        case owned
        /// `cuMemAllocAsync`: freed with `cuMemFreeAsync` on the stream it was allocated on.
        case streamOrdered(CUDAStream)
        /// Memory another library owns: never freed here.
        case borrowed
    }

    /// Allocates `byteCount` uninitialised bytes. When the device has no room, the memory pool's cached memory is
    /// returned to the driver (``CUDADevice/trimMemoryPool(keeping:)``) and the allocation tried once more.
    /// - Throws: ``CUDAError/outOfMemory(call:bytes:)`` when the device has no room; other ``CUDAError``s for
    ///   driver failures.
    public init(device: CUDADevice, byteCount: Int) throws {
        guard byteCount >= 0 else { throw CUDAError.invalidArgument("cannot allocate \(byteCount) bytes") }
        try device.bind()
        var address: CUdeviceptr = 0
        // The driver rejects zero-byte allocations; a one-byte one keeps every buffer a valid address.
        var result = device.api.cuMemAlloc(&address, max(byteCount, 1))
        if result == 2, (try? device.trimMemoryPool()) != nil {  // memory the pool caches is free for this too
            result = device.api.cuMemAlloc(&address, max(byteCount, 1))
        }
        if result == 2 {  // CUDA_ERROR_OUT_OF_MEMORY
            throw CUDAError.outOfMemory(call: "cuMemAlloc", bytes: byteCount)
        }
        try device.api.check(result, "cuMemAlloc(\(byteCount) bytes)")
        self.device = device
        self.address = address
        self.byteCount = byteCount
        ownership = .owned
    }

    /// Allocates `byteCount` uninitialised bytes in stream order: from the device's default memory pool, as work
    /// queued on `stream`. Pool allocations are cheap to repeat, and, inside ``CUDAGraph/capture(on:_:)``, become
    /// allocation nodes of the graph.
    ///
    /// The memory may be used by work queued on `stream` after this call, and by work on other streams ordered
    /// after it (with ``CUDAEvent`` and ``CUDAStream/wait(for:)``, or by synchronising `stream`); that includes
    /// this buffer's own copies without a stream. When the last reference goes, the free is queued on `stream`:
    /// work on *other* streams that uses the buffer must be ordered before that point, as with PyTorch's
    /// `record_stream` rule. Swift may release the buffer right after its last use in the code, so keep it
    /// referenced (`withExtendedLifetime`) until the last work that uses it is queued. The buffer keeps `stream`
    /// alive; a stream wrapped with ``CUDAStream/init(unowned:device:)`` must outlive it.
    ///
    /// Inside a capture, drop a buffer made in the body before the body ends: the graph then allocates and frees
    /// it on every launch. Memory that must outlive the capture (the graph's outputs) belongs in buffers made
    /// before it. A buffer allocated earlier must not be dropped while its stream is being captured: its free
    /// would become part of the graph, which the driver rejects.
    /// - Throws: ``CUDAError/outOfMemory(call:bytes:)`` when the pool cannot grow; ``CUDAError/invalidArgument(_:)``
    ///   when `stream` belongs to another device; other ``CUDAError``s for driver failures (a device without memory
    ///   pools, for one).
    public init(device: CUDADevice, byteCount: Int, stream: CUDAStream) throws {
        guard byteCount >= 0 else { throw CUDAError.invalidArgument("cannot allocate \(byteCount) bytes") }
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "cannot allocate on device \(device.ordinal) in order with a stream of device \(stream.device.ordinal)")
        }
        try device.bind()
        var address: CUdeviceptr = 0
        // As above, one byte at least: every buffer has a valid address.
        let result = device.api.cuMemAllocAsync(&address, max(byteCount, 1), stream.handle)
        if result == 2 {  // CUDA_ERROR_OUT_OF_MEMORY
            throw CUDAError.outOfMemory(call: "cuMemAllocAsync", bytes: byteCount)
        }
        try device.api.check(result, "cuMemAllocAsync(\(byteCount) bytes)")
        self.device = device
        self.address = address
        self.byteCount = byteCount
        ownership = .streamOrdered(stream)
    }

    /// Wraps device memory owned elsewhere. The caller keeps it allocated for as long as this buffer or any view of
    /// it is used; the library never frees it.
    public init(unowned address: UInt64, byteCount: Int, device: CUDADevice) throws {
        guard address != 0, byteCount >= 0 else {
            throw CUDAError.invalidArgument("cannot wrap \(byteCount) bytes at device address \(address)")
        }
        self.device = device
        self.address = address
        self.byteCount = byteCount
        ownership = .borrowed
    }

    deinit {
        // A failure here cannot be reported; at worst the memory leaks.
        switch ownership {
        case .owned:
            if (try? device.bind()) != nil { _ = device.api.cuMemFree(address) }
        case let .streamOrdered(stream):
            if (try? device.bind()) != nil { _ = device.api.cuMemFreeAsync(address, stream.handle) }
        case .borrowed:
            break
        }
    }

    /// Copies host bytes into the buffer at `offset`.
    public func copy(from host: UnsafeRawBufferPointer, toOffset offset: Int = 0, stream: CUDAStream? = nil) throws {
        try checkRange(offset, host.count, "copy \(host.count) bytes from the host")
        guard host.count > 0 else { return }
        try device.bind()
        let api = device.api
        if let stream {
            try api.check(
                api.cuMemcpyHtoDAsync(address + UInt64(offset), host.baseAddress, host.count, stream.handle),
                "cuMemcpyHtoDAsync(\(host.count) bytes)")
        } else {
            try api.check(
                api.cuMemcpyHtoD(address + UInt64(offset), host.baseAddress, host.count),
                "cuMemcpyHtoD(\(host.count) bytes)")
        }
    }

    /// Copies bytes from the buffer at `offset` into host memory.
    public func copy(
        to host: UnsafeMutableRawBufferPointer, fromOffset offset: Int = 0, stream: CUDAStream? = nil
    ) throws {
        try checkRange(offset, host.count, "copy \(host.count) bytes to the host")
        guard host.count > 0 else { return }
        try device.bind()
        let api = device.api
        if let stream {
            try api.check(
                api.cuMemcpyDtoHAsync(host.baseAddress, address + UInt64(offset), host.count, stream.handle),
                "cuMemcpyDtoHAsync(\(host.count) bytes)")
        } else {
            try api.check(
                api.cuMemcpyDtoH(host.baseAddress, address + UInt64(offset), host.count),
                "cuMemcpyDtoH(\(host.count) bytes)")
        }
    }

    /// Copies `count` bytes from `source` (at `sourceOffset`) into this buffer (at `offset`), device to device.
    public func copy(
        from source: DeviceBuffer, sourceOffset: Int = 0, toOffset offset: Int = 0, count: Int,
        stream: CUDAStream? = nil
    ) throws {
        try source.checkRange(sourceOffset, count, "copy \(count) bytes from it")
        try checkRange(offset, count, "copy \(count) bytes into it")
        guard count > 0 else { return }
        try device.bind()
        let (target, origin) = (address + UInt64(offset), source.address + UInt64(sourceOffset))
        let api = device.api
        if let stream {
            try api.check(
                api.cuMemcpyDtoDAsync(target, origin, count, stream.handle), "cuMemcpyDtoDAsync(\(count) bytes)")
        } else {
            try api.check(api.cuMemcpyDtoD(target, origin, count), "cuMemcpyDtoD(\(count) bytes)")
        }
    }

    /// Sets every byte to `value`.
    public func fill(_ value: UInt8, stream: CUDAStream? = nil) throws {
        try fill(value, fromOffset: 0, count: byteCount, stream: stream)
    }

    /// Sets `count` bytes from `offset` to `value`.
    public func fill(_ value: UInt8, fromOffset offset: Int, count: Int, stream: CUDAStream? = nil) throws {
        try checkRange(offset, count, "fill \(count) bytes")
        guard count > 0 else { return }
        try device.bind()
        let api = device.api
        let target = address + UInt64(offset)
        if let stream {
            try api.check(api.cuMemsetD8Async(target, value, count, stream.handle), "cuMemsetD8Async")
        } else {
            try api.check(api.cuMemsetD8(target, value, count), "cuMemsetD8")
        }
    }

    /// Queues a write of the 64-bit `value` (little-endian, as the GPU reads it) at `offset`, which must be a
    /// multiple of 4 from a 4-byte-aligned address. Two `cuMemsetD32Async` calls rather than a host copy: the
    /// value travels in the call, so no host memory must stay alive, and a ``CUDAGraph`` that captures them
    /// writes the same value on every launch (a captured host copy would reread its host memory at each launch,
    /// and copies from pageable memory may not be capturable at all).
    func write(_ value: UInt64, atByteOffset offset: Int, stream: CUDAStream) throws {
        try checkRange(offset, 8, "write 8 bytes")
        let target = address + UInt64(offset)
        guard target % 4 == 0 else {
            throw CUDAError.invalidArgument("cannot write 32-bit words at device address \(target): not 4-byte aligned")
        }
        try device.bind()
        let api = device.api
        for (word, shift) in [(target, 0), (target + 4, 32)] {
            try api.check(
                api.cuMemsetD32Async(word, UInt32(truncatingIfNeeded: value >> shift), 1, stream.handle),
                "cuMemsetD32Async")
        }
    }

    /// A new buffer holding `bytes`.
    public convenience init(device: CUDADevice, bytes: [UInt8]) throws {
        try self.init(device: device, byteCount: bytes.count)
        try bytes.withUnsafeBytes { try copy(from: $0) }
    }

    /// All bytes, copied to the host.
    public func bytes() throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: byteCount)
        try result.withUnsafeMutableBytes { try copy(to: $0) }
        return result
    }

    private func checkRange(_ offset: Int, _ count: Int, _ action: String) throws {
        guard offset >= 0, count >= 0, offset <= byteCount, count <= byteCount - offset else {
            throw CUDAError.invalidArgument(
                "cannot \(action) at byte offset \(offset) of a \(byteCount)-byte device buffer")
        }
    }
}
