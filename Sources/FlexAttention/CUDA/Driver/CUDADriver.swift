/// The CUDA driver, loaded and initialised on first use (``libraryPath()`` tells which file was loaded).
///
/// Loading happens once per process; the outcome, success or the error listing what was searched, is kept, so a
/// machine without CUDA pays for the search once and every later call gets the same error.
public enum CUDADriver {
    private static let loaded: Result<CUDADriverAPI, CUDAError> = Result {
        let library = try DynamicLibrary.openFirst(
            LibrarySearch.driverCandidates(environment: ProcessEnvironment.current), library: "CUDA driver")
        let api = try CUDADriverAPI(library: library)
        try api.check(api.cuInit(0), "cuInit(0)")
        return api
    }.mapError { $0 as? CUDAError ?? .invalidArgument("\($0)") }

    static func api() throws -> CUDADriverAPI {
        try loaded.get()
    }

    /// Whether a driver loaded and initialised; false also when it loaded but reported no usable device.
    public static var isAvailable: Bool {
        (try? deviceCount()).map { $0 > 0 } ?? false
    }

    /// The path the driver was loaded from.
    public static func libraryPath() throws -> String {
        try api().library.path
    }

    /// The CUDA version the driver supports, e.g. `(13, 0)`.
    public static func version() throws -> (major: Int, minor: Int) {
        let api = try api()
        var version: Int32 = 0
        try api.check(api.cuDriverGetVersion(&version), "cuDriverGetVersion")
        return (Int(version) / 1000, Int(version) % 1000 / 10)
    }

    /// The number of CUDA devices visible to this process.
    public static func deviceCount() throws -> Int {
        let api = try api()
        var count: Int32 = 0
        try api.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }
}
