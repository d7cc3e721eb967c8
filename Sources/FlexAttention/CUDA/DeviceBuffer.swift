/// Bytes in device memory.
///
/// A buffer the library allocates frees itself with its last reference. A buffer that wraps memory another library
/// owns (a PyTorch tensor's data pointer, say) never frees it. All operations are safe from any thread; ordering
/// between operations on different streams is the caller's.
///
/// Copies with a `stream` are queued on it and return at once: the host memory must stay valid and unchanged until
/// the stream is synchronised. Copies without one complete before returning.
public final class DeviceBuffer: Sendable {
    public let device: CUDADevice
    /// The device address (a `CUdeviceptr`).
    public let address: UInt64
    public let byteCount: Int
    private let ownsMemory: Bool

    /// Allocates `byteCount` uninitialised bytes.
    /// - Throws: ``CUDAError/outOfMemory(call:bytes:)`` when the device has no room; other ``CUDAError``s for
    ///   driver failures.
    public init(device: CUDADevice, byteCount: Int) throws {
        guard byteCount >= 0 else { throw CUDAError.invalidArgument("cannot allocate \(byteCount) bytes") }
        try device.bind()
        var address: CUdeviceptr = 0
        // The driver rejects zero-byte allocations; a one-byte one keeps every buffer a valid address.
        let result = device.api.cuMemAlloc(&address, max(byteCount, 1))
        if result == 2 {  // CUDA_ERROR_OUT_OF_MEMORY
            throw CUDAError.outOfMemory(call: "cuMemAlloc", bytes: byteCount)
        }
        try device.api.check(result, "cuMemAlloc(\(byteCount) bytes)")
        self.device = device
        self.address = address
        self.byteCount = byteCount
        ownsMemory = true
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
        ownsMemory = false
    }

    deinit {
        if ownsMemory, (try? device.bind()) != nil { _ = device.api.cuMemFree(address) }
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
        guard byteCount > 0 else { return }
        try device.bind()
        let api = device.api
        if let stream {
            try api.check(api.cuMemsetD8Async(address, value, byteCount, stream.handle), "cuMemsetD8Async")
        } else {
            try api.check(api.cuMemsetD8(address, value, byteCount), "cuMemsetD8")
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
