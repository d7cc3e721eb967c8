import Synchronization

/// One kernel to compile: its generated source and the target.
package struct KernelRequest: Sendable, Hashable {
    /// The `extern "C"` kernel name, also NVRTC's program name.
    package var name: String
    package var source: String
    package var architecture: GPUArchitecture
    /// Options beyond the architecture and language standard, which are always passed.
    package var extraOptions: [String]

    package init(name: String, source: String, architecture: GPUArchitecture, extraOptions: [String] = []) {
        self.name = name
        self.source = source
        self.architecture = architecture
        self.extraOptions = extraOptions
    }

    /// Everything passed to NVRTC.
    package var compilerOptions: [String] {
        ["--gpu-architecture=\(architecture)", "--std=c++17"] + extraOptions
    }
}

/// Where a cubin came from.
package enum KernelOrigin: String, Sendable {
    case memory, disk, compiled
}

/// Compiled kernels, kept in memory for the process and on disk across processes.
///
/// The key is a SHA-256 of the source, the options, the compiler's version and the architecture, so any change to
/// one of them compiles anew. Disk entries are written to a temporary file and renamed into place, and carry their
/// length and a checksum (``KernelCacheEntry``): concurrent threads and processes never see a partial entry, and a
/// corrupt or truncated one is compiled again and replaced. Two processes missing the same key at once both
/// compile it and the last rename wins; both results are identical. Disk problems never fail a request: the kernel
/// is compiled and kept in memory.
package final class KernelCache: Sendable {
    package let compiler: any KernelCompiler
    /// The folder entries are written to, or nil for a memory-only cache.
    package let directory: String?
    private let memory = Mutex<[String: [UInt8]]>([:])
    private let modules = Mutex<[String: CUDAModule]>([:])
    /// Functions by device and kernel name, found without generating or hashing a source.
    private let functions = Mutex<[String: CUDAFunction]>([:])

    /// - Parameters:
    ///   - compiler: NVRTC, or a stand-in in tests.
    ///   - root: the cache folder (``KernelCacheLocation/current`` by default); entries go in its `kernels/`
    ///     folder. Nil keeps kernels in memory only.
    package init(compiler: any KernelCompiler, root: String? = KernelCacheLocation.current) {
        self.compiler = compiler
        directory = root.map { "\($0)/kernels" }
    }

    /// The cache key of a request: hex SHA-256.
    package func key(for request: KernelRequest) -> String {
        var hasher = SHA256()
        let fields = ["flexattention-kernel-\(KernelCacheEntry.formatVersion)", compiler.versionTag,
                      request.architecture.description, request.name] + request.compilerOptions + [request.source]
        for field in fields {
            hasher.update(Array(field.utf8))
            hasher.update([0])
        }
        return hexString(hasher.finalize())
    }

    /// The cubin for a request and where it came from.
    /// - Throws: ``CUDAError/compilation(kernel:log:source:)`` when the source does not compile.
    package func cubin(for request: KernelRequest) throws -> (cubin: [UInt8], origin: KernelOrigin) {
        let key = key(for: request)
        if let cubin = memory.withLock({ $0[key] }) { return (cubin, .memory) }
        let path = directory.map { "\($0)/\(key).cubin" }
        if let path, let bytes = FileSystem.read(path) {
            if let cubin = KernelCacheEntry.decode(bytes) {
                remember(cubin, key: key)
                return (cubin, .disk)
            }
            FileSystem.remove(path)  // corrupt or truncated: compile it again below
        }
        let cubin = try compiler.compile(source: request.source, name: request.name, options: request.compilerOptions)
            .cubin
        remember(cubin, key: key)
        if let directory, let path {
            // Best effort: an unwritable cache folder costs a recompile next process, nothing more.
            try? FileSystem.createDirectories(directory)
            try? FileSystem.writeAtomically(KernelCacheEntry.encode(cubin), to: path)
        }
        return (cubin, .compiled)
    }

    /// The kernel loaded on `device`, compiled for its architecture; modules stay loaded for the cache's life.
    private func function(_ name: String, source: String, on device: CUDADevice) throws -> CUDAFunction {
        let request = KernelRequest(name: name, source: source, architecture: device.architecture)
        let moduleKey = "\(device.ordinal)/\(key(for: request))"
        if let module = modules.withLock({ $0[moduleKey] }) { return try module.function(named: name) }
        let module = try CUDAModule(device: device, cubin: cubin(for: request).cubin)
        let kept = modules.withLock { loaded in
            if let existing = loaded[moduleKey] { return existing }
            loaded[moduleKey] = module
            return module
        }
        return try kept.function(named: name)
    }

    /// The kernel loaded on `device`. A generated kernel's name determines its source (every parameter that shapes
    /// the text is in the name, each mod as a hash of its definition), so a kernel loaded before is found by its
    /// name alone: a call that reuses a kernel neither generates nor hashes its source.
    package func function(for kernel: some GeneratedKernel, on device: CUDADevice) throws -> CUDAFunction {
        let loadedKey = "\(device.ordinal)/\(kernel.name)"
        if let loaded = functions.withLock({ $0[loadedKey] }) { return loaded }
        let loaded = try function(kernel.name, source: kernel.source, on: device)
        functions.withLock { $0[loadedKey] = loaded }
        return loaded
    }

    /// Modules loaded so far (one per kernel and device): what a check counts to prove that new values reuse kernels.
    package var loadedModuleCount: Int { modules.withLock { $0.count } }

    private func remember(_ cubin: [UInt8], key: String) {
        memory.withLock { $0[key] = cubin }
    }
}
