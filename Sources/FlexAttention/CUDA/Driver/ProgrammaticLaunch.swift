/// Programmatic dependent launch (sm_90): a kernel queued this way may start while the kernel before it on the
/// stream still runs, once every CTA of that kernel has executed `griddepcontrol.launch_dependents` (or exited).
/// The later kernel then orders itself after whatever of the earlier one's results it reads (spinning on a counter,
/// say); nothing else is ordered for it. Launched through `cuLaunchKernelEx` with one attribute,
/// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`.
enum ProgrammaticLaunch {
    /// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`.
    static let attributeID: Int32 = 6
    /// `CUlaunchAttribute`: the id, 4 bytes of padding, then a 64-byte value union.
    static let attributeBytes = 72
    /// `CUlaunchConfig`: six dimensions and the shared-memory bytes (7 × 4), padding to 8, the stream, the attribute
    /// pointer and their count (padded to 8).
    static let configBytes = 56

    /// The kernel-text statement that lets the dependent kernel start: every thread of each CTA may run it; only
    /// the first counts.
    static let launchDependents = #"asm volatile("griddepcontrol.launch_dependents;" ::: "memory");"#

    /// Lays out, in `storage` (``configBytes`` then ``attributeBytes``, 8-byte aligned), a `CUlaunchConfig` for
    /// `dimensions` (grid x, y, z, block x, y, z) on `stream` whose one attribute allows the programmatic launch.
    static func write(
        into storage: UnsafeMutableRawPointer, dimensions: [UInt32], sharedMemory: UInt32, stream: CUstream?
    ) {
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: configBytes + attributeBytes)
        let attribute = storage + configBytes
        attribute.storeBytes(of: attributeID, as: Int32.self)
        (attribute + 8).storeBytes(of: Int32(1), as: Int32.self)  // programmaticStreamSerializationAllowed
        for (index, dimension) in dimensions.prefix(6).enumerated() {
            (storage + 4 * index).storeBytes(of: dimension, as: UInt32.self)
        }
        (storage + 24).storeBytes(of: sharedMemory, as: UInt32.self)
        (storage + 32).storeBytes(of: UInt(bitPattern: stream), as: UInt.self)
        (storage + 40).storeBytes(of: UInt(bitPattern: attribute), as: UInt.self)
        (storage + 48).storeBytes(of: UInt32(1), as: UInt32.self)
    }
}
