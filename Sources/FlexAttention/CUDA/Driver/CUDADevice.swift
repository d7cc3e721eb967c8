import Synchronization

/// One CUDA device and its primary context, the context the CUDA runtime and PyTorch share, so device pointers
/// move freely between this library and them.
///
/// Obtain it with ``open(_:)``; there is one instance per ordinal per process. Every operation binds the context
/// to the calling thread first, so a device, its buffers, streams and kernels can be used from any thread.
public final class CUDADevice: Sendable {
    /// The CUDA ordinal.
    public let ordinal: Int
    /// The marketing name, e.g. "NVIDIA H100 80GB HBM3".
    public let name: String
    /// Compute capability, e.g. `(9, 0)`.
    public let computeCapability: (major: Int, minor: Int)
    /// Streaming multiprocessors.
    public let multiprocessorCount: Int
    /// Total device memory in bytes.
    public let totalMemory: Int
    /// Shared memory a block may have once its kernel opts in to more than the default.
    public let maxSharedMemoryPerBlockOptIn: Int
    /// L2 cache in bytes.
    public let l2CacheSize: Int
    /// Shared memory one multiprocessor holds for all its resident CTAs.
    let maxSharedMemoryPerMultiprocessor: Int

    let api: CUDADriverAPI
    let handle: CUdevice
    private let contextAddress: UInt  // the primary context, kept as an integer so the class is Sendable

    private static let opened = Mutex<[Int: CUDADevice]>([:])

    /// The device with this ordinal.
    /// - Throws: ``CUDAError`` when no driver loads or no such device exists.
    public static func open(_ ordinal: Int) throws -> CUDADevice {
        let api = try CUDADriver.api()
        return try opened.withLock { devices in
            if let device = devices[ordinal] { return device }
            let count = try CUDADriver.deviceCount()
            guard ordinal >= 0, ordinal < count else {
                throw CUDAError.noSuchDevice(ordinal: ordinal, available: count)
            }
            let device = try CUDADevice(api: api, ordinal: ordinal)
            // Freed stream-ordered memory stays in the pool (CUDADevice+MemoryPool); a device without pools only
            // loses that cache, so a failure here is not an error.
            try? device.setMemoryPoolRetention(bytes: .max)
            devices[ordinal] = device
            return device
        }
    }

    private init(api: CUDADriverAPI, ordinal: Int) throws {
        self.api = api
        self.ordinal = ordinal
        var handle: CUdevice = 0
        try api.check(api.cuDeviceGet(&handle, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        self.handle = handle

        var nameBytes = [CChar](repeating: 0, count: 256)
        try api.check(api.cuDeviceGetName(&nameBytes, Int32(nameBytes.count), handle), "cuDeviceGetName")
        name = string(fromNulTerminated: nameBytes)

        func attribute(_ code: Int32, _ label: String) throws -> Int {
            var value: Int32 = 0
            try api.check(api.cuDeviceGetAttribute(&value, code, handle), "cuDeviceGetAttribute(\(label))")
            return Int(value)
        }
        computeCapability = (
            try attribute(75, "COMPUTE_CAPABILITY_MAJOR"), try attribute(76, "COMPUTE_CAPABILITY_MINOR")
        )
        multiprocessorCount = try attribute(16, "MULTIPROCESSOR_COUNT")
        maxSharedMemoryPerBlockOptIn = try attribute(97, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN")
        l2CacheSize = try attribute(38, "L2_CACHE_SIZE")
        maxSharedMemoryPerMultiprocessor = try attribute(81, "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR")
        var bytes = 0
        try api.check(api.cuDeviceTotalMem(&bytes, handle), "cuDeviceTotalMem")
        totalMemory = bytes

        var context: CUcontext?
        try api.check(api.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain(\(ordinal))")
        contextAddress = UInt(bitPattern: context)
    }

    /// The target to compile this device's kernels for.
    public var architecture: GPUArchitecture {
        .native(major: computeCapability.major, minor: computeCapability.minor)
    }

    /// Makes the primary context current on the calling thread. Cheap; called before every driver call that
    /// works in a context.
    func bind() throws {
        try api.check(
            api.cuCtxSetCurrent(CUcontext(bitPattern: contextAddress)), "cuCtxSetCurrent(device \(ordinal))")
    }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        try bind()
        var free = 0
        var total = 0
        try api.check(api.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    /// Waits for all work on the device to finish and reports any error a kernel raised.
    public func synchronize() throws {
        try bind()
        try api.check(api.cuCtxSynchronize(), "cuCtxSynchronize")
    }
}
