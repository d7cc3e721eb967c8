import Glibc

/// The NVRTC functions the library calls, resolved once with `dlsym`.
struct NVRTCAPI: @unchecked Sendable {  // immutable C function pointers
    typealias Program = OpaquePointer
    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>) -> Int32
    let nvrtcCompileProgram: @convention(c) (Program?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    let nvrtcGetPTXSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    let nvrtcGetPTX: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32

    init(library: DynamicLibrary) throws {
        self.library = library
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcGetPTXSize = try library.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try library.function("nvrtcGetPTX")
    }

    func check(_ result: Int32, _ call: String) throws {
        guard result != 0 else { return }
        let message = nvrtcGetErrorString(result).map { String(cString: $0) } ?? "unknown NVRTC error"
        throw CUDAError.nvrtc(call: call, code: result, message: message)
    }
}

/// What NVRTC produced for one kernel.
package struct CompiledKernel: Sendable, Equatable {
    /// Machine code for the target architecture, ready for ``CUDAModule``.
    package var cubin: [UInt8]
    /// NVRTC's log: warnings, when any.
    package var log: String
}

/// Something that turns CUDA C++ into a cubin. ``NVRTC`` is the real one; tests of the cache use their own.
package protocol KernelCompiler: Sendable {
    /// Identifies the compiler's release; part of every cache key, so a new release never reuses old binaries.
    var versionTag: String { get }
    func compile(source: String, name: String, options: [String]) throws -> CompiledKernel
}

/// NVIDIA's run-time compiler, loaded on first use (see ``LibrarySearch`` for where it is looked for).
package struct NVRTC: KernelCompiler {
    private static let loaded: Result<NVRTCAPI, CUDAError> = Result {
        try NVRTCAPI(
            library: DynamicLibrary.openFirst(
                LibrarySearch.nvrtcCandidates(environment: ProcessEnvironment.current), library: "NVRTC"))
    }.mapError { $0 as? CUDAError ?? .invalidArgument("\($0)") }

    let api: NVRTCAPI

    /// The process's NVRTC.
    /// - Throws: ``CUDAError/libraryNotFound(library:searched:)`` listing every place searched.
    package init() throws {
        api = try NVRTC.loaded.get()
    }

    /// The path NVRTC was loaded from.
    package var libraryPath: String { api.library.path }

    /// NVRTC's version, e.g. `(13, 0)`.
    package var version: (major: Int, minor: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        _ = api.nvrtcVersion(&major, &minor)
        return (Int(major), Int(minor))
    }

    package var versionTag: String { "nvrtc-\(version.major).\(version.minor)" }

    /// Compiles one translation unit to a cubin. `options` must name a real architecture
    /// (`--gpu-architecture=sm_90a`), since the result is machine code.
    /// - Throws: ``CUDAError/compilation(kernel:log:source:)`` with NVRTC's log and the numbered source when the
    ///   source does not compile.
    package func compile(source: String, name: String, options: [String]) throws -> CompiledKernel {
        try withCompiledProgram(source: source, name: name, options: options) { program, log in
            var size = 0
            try api.check(api.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
            var cubin = [CChar](repeating: 0, count: size)
            try api.check(api.nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN(\(name))")
            return CompiledKernel(cubin: cubin.map { UInt8(bitPattern: $0) }, log: log)
        }
    }

    /// PTX for a virtual architecture (`--gpu-architecture=compute_90a`), for reading.
    package func ptx(source: String, name: String, options: [String]) throws -> String {
        try withCompiledProgram(source: source, name: name, options: options) { program, _ in
            var size = 0
            try api.check(api.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize(\(name))")
            var text = [CChar](repeating: 0, count: max(size, 1))
            try api.check(api.nvrtcGetPTX(program, &text), "nvrtcGetPTX(\(name))")
            return string(fromNulTerminated: text)
        }
    }

    /// Creates and compiles a program, hands it and its log to `body`, and destroys it.
    private func withCompiledProgram<Result>(
        source: String, name: String, options: [String], _ body: (NVRTCAPI.Program?, String) throws -> Result
    ) throws -> Result {
        var program: NVRTCAPI.Program?
        try api.check(api.nvrtcCreateProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = api.nvrtcDestroyProgram(&program) }
        let result = withCStrings(options) { api.nvrtcCompileProgram(program, Int32(options.count), $0) }
        let log = try programLog(program)
        if result == 6 {  // NVRTC_ERROR_COMPILATION
            throw CUDAError.compilation(kernel: name, log: log, source: numberedLines(source))
        }
        try api.check(result, "nvrtcCompileProgram(\(name))")
        return try body(program, log)
    }

    private func programLog(_ program: NVRTCAPI.Program?) throws -> String {
        var size = 0
        try api.check(api.nvrtcGetProgramLogSize(program, &size), "nvrtcGetProgramLogSize")
        var text = [CChar](repeating: 0, count: max(size, 1))
        try api.check(api.nvrtcGetProgramLog(program, &text), "nvrtcGetProgramLog")
        return string(fromNulTerminated: text)
    }
}

/// Calls `body` with a C array of C strings that lives for the call.
private func withCStrings<Result>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> Result
) -> Result {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// The text before the first NUL of a C character buffer.
func string(fromNulTerminated characters: [CChar]) -> String {
    String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The source with 1-based line numbers, as NVRTC's log refers to them.
func numberedLines(_ source: String) -> String {
    let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
    let width = String(lines.count).count
    return lines.enumerated().map { index, line in
        let number = String(index + 1)
        return String(repeating: " ", count: width - number.count) + number + "  " + line
    }.joined(separator: "\n")
}
