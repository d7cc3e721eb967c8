/// The device's default memory pool, which serves every stream-ordered allocation (``DeviceBuffer/init(device:byteCount:stream:)``).
///
/// CUDA's pools hand memory freed in stream order back to the driver at the next synchronisation; allocating it
/// again then maps it again, which for the gigabytes a long-sequence step allocates costs more than the step's own
/// memory traffic. So the library keeps freed memory in the pool, as PyTorch's caching allocator does: a device
/// opened with ``open(_:)`` retains all of it. A synchronous allocation that finds no room first trims the pool and
/// tries again, so cached memory never causes an out-of-memory error of its own. A program that shares the GPU with
/// another allocator (PyTorch's) can set a lower retention, or trim when it wants the memory back.
extension CUDADevice {
    /// Sets how many bytes of freed memory the pool keeps across synchronisations (`CU_MEMPOOL_ATTR_RELEASE_THRESHOLD`):
    /// 0 returns everything at each one (CUDA's default), `Int.max` keeps all.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` for a negative count; the driver's error for a device without
    ///   memory pools.
    public func setMemoryPoolRetention(bytes: Int) throws {
        guard bytes >= 0 else {
            throw CUDAError.invalidArgument("a memory pool cannot retain \(bytes) bytes")
        }
        var threshold = UInt64(bytes)
        let pool = try defaultMemoryPool()
        try api.check(api.cuMemPoolSetAttribute(pool, 4, &threshold), "cuMemPoolSetAttribute(RELEASE_THRESHOLD, \(bytes))")
    }

    /// Returns the pool's freed memory beyond `bytes` to the driver now (`cuMemPoolTrimTo`).
    /// - Throws: ``CUDAError/invalidArgument(_:)`` for a negative count; the driver's error for a device without
    ///   memory pools.
    public func trimMemoryPool(keeping bytes: Int = 0) throws {
        guard bytes >= 0 else { throw CUDAError.invalidArgument("a memory pool cannot keep \(bytes) bytes") }
        let pool = try defaultMemoryPool()
        try api.check(api.cuMemPoolTrimTo(pool, bytes), "cuMemPoolTrimTo(\(bytes))")
    }

    private func defaultMemoryPool() throws -> CUmemoryPool? {
        try bind()
        var pool: CUmemoryPool?
        try api.check(api.cuDeviceGetDefaultMemPool(&pool, handle), "cuDeviceGetDefaultMemPool(device \(ordinal))")
        return pool
    }
}
