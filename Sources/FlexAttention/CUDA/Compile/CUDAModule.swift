/// A cubin loaded on a device. Unloaded with its last reference; its functions keep it alive.
package final class CUDAModule: Sendable {
    package let device: CUDADevice
    let address: UInt  // the CUmodule

    /// Loads machine code produced by ``NVRTC/compile(source:name:options:)`` for this device's architecture.
    package init(device: CUDADevice, cubin: [UInt8]) throws {
        self.device = device
        try device.bind()
        var module: CUmodule?
        try cubin.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { throw CUDAError.invalidArgument("empty cubin") }
            try device.api.check(device.api.cuModuleLoadData(&module, base), "cuModuleLoadData(\(bytes.count) bytes)")
        }
        address = UInt(bitPattern: module)
    }

    /// The `extern "C"` kernel named `name`.
    package func function(named name: String) throws -> CUDAFunction {
        try device.bind()
        var function: CUfunction?
        try device.api.check(
            device.api.cuModuleGetFunction(&function, CUmodule(bitPattern: address), name),
            "cuModuleGetFunction(\(name))")
        return CUDAFunction(module: self, name: name, address: UInt(bitPattern: function))
    }

    deinit {
        if (try? device.bind()) != nil { _ = device.api.cuModuleUnload(CUmodule(bitPattern: address)) }
    }
}

/// One argument of a kernel launch, passed by value as the kernel's parameter declares it.
///
/// Device memory must stay allocated until the kernel has finished, not only until ``CUDAFunction/launch(grid:block:sharedMemory:stream:arguments:)``
/// returns: keep the buffers alive (`withExtendedLifetime`) until the stream or device is synchronised.
package enum KernelArgument: Sendable {
    /// A device address, passed as a pointer.
    case pointer(UInt64)
    /// A buffer's device address; the argument holds the buffer for the duration of the launch call.
    case buffer(DeviceBuffer)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case float32(Float)
    /// A TMA descriptor, passed by value (a `const __grid_constant__` 128-byte parameter).
    case tensorMap(CUDATensorMap)

    /// Bytes and alignment of the parameter.
    var layout: (size: Int, alignment: Int) {
        if case .tensorMap = self { return (CUDATensorMap.byteCount, 64) }
        return (8, 8)
    }
}

/// A kernel in a loaded module.
package final class CUDAFunction: Sendable {
    package let module: CUDAModule
    package let name: String
    let address: UInt  // the CUfunction

    init(module: CUDAModule, name: String, address: UInt) {
        self.module = module
        self.name = name
        self.address = address
    }

    private var device: CUDADevice { module.device }
    private var handle: CUfunction? { CUfunction(bitPattern: address) }

    /// Registers per thread, from the compiled code.
    package func registerCount() throws -> Int { try attribute(4, "NUM_REGS") }
    /// Static shared memory per block, in bytes.
    package func staticSharedMemory() throws -> Int { try attribute(1, "SHARED_SIZE_BYTES") }
    /// Local (spill and stack) memory per thread, in bytes.
    package func localMemory() throws -> Int { try attribute(3, "LOCAL_SIZE_BYTES") }
    /// The largest block this kernel can be launched with.
    package func maxThreadsPerBlock() throws -> Int { try attribute(0, "MAX_THREADS_PER_BLOCK") }

    /// How many CTAs of `threads` threads and `sharedMemory` bytes of dynamic shared memory fit on one
    /// multiprocessor at once (registers, shared memory and threads considered).
    package func maxActiveBlocksPerMultiprocessor(threads: Int, sharedMemory: Int) throws -> Int {
        try device.bind()
        var blocks: Int32 = 0
        try device.api.check(
            device.api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, handle, Int32(threads), sharedMemory),
            "cuOccupancyMaxActiveBlocksPerMultiprocessor(\(name))")
        return Int(blocks)
    }

    /// Allows launches with up to `bytes` of dynamic shared memory; needed above 48 KB.
    package func setMaxDynamicSharedMemory(_ bytes: Int) throws {
        guard bytes >= 0, bytes <= device.maxSharedMemoryPerBlockOptIn else {
            throw CUDAError.invalidArgument(
                "\(bytes) bytes of shared memory: \(device.name) allows at most \(device.maxSharedMemoryPerBlockOptIn)")
        }
        try device.bind()
        try device.api.check(
            device.api.cuFuncSetAttribute(handle, 8, Int32(bytes)),
            "cuFuncSetAttribute(\(name), MAX_DYNAMIC_SHARED_SIZE_BYTES, \(bytes))")
    }

    /// Queues the kernel on `stream` (the default stream when nil). Errors the kernel raises while running
    /// surface at the next synchronisation. With `overlappingPrevious` (and a driver that has `cuLaunchKernelEx`) it
    /// is a ``ProgrammaticLaunch``: it may start before the kernel queued before it ends, and must order itself
    /// after what it reads of that kernel's results.
    package func launch(
        grid: (x: Int, y: Int, z: Int), block: (x: Int, y: Int, z: Int), sharedMemory: Int = 0,
        stream: CUDAStream? = nil, overlappingPrevious: Bool = false, arguments: [KernelArgument]
    ) throws {
        let dimensions = [grid.x, grid.y, grid.z, block.x, block.y, block.z]
        guard dimensions.allSatisfy({ $0 > 0 && $0 <= Int(UInt32.max) }), (0...Int(UInt32.max)).contains(sharedMemory) else {
            throw CUDAError.invalidArgument(
                "cannot launch \(name) with grid \(grid), block \(block), \(sharedMemory) bytes of shared memory")
        }
        try device.bind()
        // Each argument lives in its own slot (8 bytes, or a tensor map's 128); the driver reads as many bytes as the
        // parameter's type.
        var offsets = [Int]()
        var size = 0
        for argument in arguments {
            let (bytes, alignment) = argument.layout
            size = (size + alignment - 1) / alignment * alignment
            offsets.append(size)
            size += bytes
        }
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 64)
        defer { slots.deallocate() }
        var pointers = [UnsafeMutableRawPointer?]()
        for (argument, offset) in zip(arguments, offsets) {
            let slot = slots + offset
            switch argument {
            case let .pointer(value): slot.storeBytes(of: value, as: UInt64.self)
            case let .buffer(buffer): slot.storeBytes(of: buffer.address, as: UInt64.self)
            case let .int32(value): slot.storeBytes(of: value, as: Int32.self)
            case let .uint32(value): slot.storeBytes(of: value, as: UInt32.self)
            case let .int64(value): slot.storeBytes(of: value, as: Int64.self)
            case let .float32(value): slot.storeBytes(of: value, as: Float.self)
            case let .tensorMap(map):
                for (index, word) in map.words.enumerated() { (slot + 8 * index).storeBytes(of: word, as: UInt64.self) }
            }
            pointers.append(slot)
        }
        let u = dimensions.map { UInt32($0) }
        if overlappingPrevious, let launchEx = device.api.cuLaunchKernelEx {
            let config = UnsafeMutableRawPointer.allocate(
                byteCount: ProgrammaticLaunch.configBytes + ProgrammaticLaunch.attributeBytes, alignment: 8)
            defer { config.deallocate() }
            ProgrammaticLaunch.write(into: config, dimensions: u, sharedMemory: UInt32(sharedMemory), stream: stream?.handle)
            let result = pointers.withUnsafeMutableBufferPointer { launchEx(config, handle, $0.baseAddress, nil) }
            try device.api.check(result, "cuLaunchKernelEx(\(name), grid \(grid), block \(block), programmatic)")
            return
        }
        let result = pointers.withUnsafeMutableBufferPointer { parameters in
            device.api.cuLaunchKernel(
                handle, u[0], u[1], u[2], u[3], u[4], u[5], UInt32(sharedMemory), stream?.handle,
                parameters.baseAddress, nil)
        }
        try device.api.check(result, "cuLaunchKernel(\(name), grid \(grid), block \(block))")
    }

    private func attribute(_ code: Int32, _ label: String) throws -> Int {
        try device.bind()
        var value: Int32 = 0
        try device.api.check(device.api.cuFuncGetAttribute(&value, code, handle), "cuFuncGetAttribute(\(name), \(label))")
        return Int(value)
    }
}
