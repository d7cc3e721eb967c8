/// One place to try when loading a library: a path for `dlopen` (a full path, or a bare name for the system
/// loader), where it came from, and libraries to load from the same folder first. A candidate marked
/// `onlyIfLoaded` is taken only when the process already has that library (`RTLD_NOLOAD`).
struct LibraryCandidate: Sendable, Equatable {
    var path: String
    var origin: String
    var preload: [String] = []
    var onlyIfLoaded = false
}

/// Where the CUDA driver and NVRTC are looked for, in order. Nothing here is fixed at build time: the package builds
/// and its CPU path runs where none of these exist.
///
/// NVRTC (`libnvrtc.so.13`, else `.so.12`, else `.so`):
/// 1. `FLEXATTENTION_NVRTC`: the library file itself, or its folder.
/// 2. `CUDA_HOME`, then `CUDA_PATH`: their `lib64` and `targets/<arch>-linux/lib` folders.
/// 3. `/usr/local/cuda`, the same two folders.
/// 4. Python site-packages holding NVIDIA's wheels (`nvidia/cu13/lib`, `nvidia/cu12/lib`,
///    `nvidia/cuda_nvrtc/lib`), under these prefixes: `VIRTUAL_ENV`, `CONDA_PREFIX`, each `PYTHONPATH` entry,
///    `$HOME/.local`, `/usr/local`, `/usr`, `/opt/conda` and every `/opt/*/.venv` (PyTorch's images put it there).
///    A library cannot ask Python where its site-packages are, so it looks in `lib/python3*/{site,dist}-packages`
///    of each prefix.
/// 5. The folder `scripts/install-nvrtc.sh` installs into: `$XDG_CACHE_HOME/flexattention/nvrtc-*`
///    (`~/.cache/flexattention/nvrtc-*` when `XDG_CACHE_HOME` is unset), newest version first.
/// 6. The system loader (`LD_LIBRARY_PATH`, `ld.so.cache`).
///
/// NVRTC opens `libnvrtc-builtins.so.<major>.<minor>` by name when it compiles; a candidate in a folder preloads
/// that file from the same folder by full path, so the folder need not be on `LD_LIBRARY_PATH`.
///
/// Driver (`libcuda.so.1`): `FLEXATTENTION_CUDA_DRIVER` (file or folder), then the system loader, then the folders
/// where drivers live in containers and WSL (`/usr/local/nvidia/lib64`, `/usr/lib/wsl/lib`, `/usr/lib64`,
/// `/usr/lib/x86_64-linux-gnu`, `/usr/lib/aarch64-linux-gnu`). Toolkit folders are skipped: they hold only link
/// stubs of the driver, which load but fail every call.
enum LibrarySearch {
    static let nvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
    static let driverNames = ["libcuda.so.1", "libcuda.so"]
    static let nvrtcWheelFolders = ["nvidia/cu13/lib", "nvidia/cu12/lib", "nvidia/cuda_nvrtc/lib"]

    static func nvrtcCandidates(environment: [String: String]) -> [LibraryCandidate] {
        var folders = [(String, String)]()
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment[variable], !root.isEmpty {
                folders += toolkitLibraryFolders(root).map { ($0, variable) }
            }
        }
        folders += toolkitLibraryFolders("/usr/local/cuda").map { ($0, "default CUDA toolkit") }
        folders += pythonWheelFolders(environment: environment, wheelFolders: nvrtcWheelFolders)
            .map { ($0, "Python site-packages") }
        folders += installScriptFolders(environment: environment).map { ($0, "scripts/install-nvrtc.sh") }

        var candidates = explicitCandidates(
            environment["FLEXATTENTION_NVRTC"], variable: "FLEXATTENTION_NVRTC", names: nvrtcNames)
        for (folder, origin) in folders {
            // Only folders that exist: a missing toolkit is one line of the error, not three.
            guard FileSystem.isDirectory(folder) else { continue }
            candidates += nvrtcNames.map { name in
                nvrtcCandidate(path: "\(folder)/\(name)", origin: origin)
            }
        }
        candidates += nvrtcNames.map { LibraryCandidate(path: $0, origin: "system loader") }
        return candidates
    }

    static func driverCandidates(environment: [String: String]) -> [LibraryCandidate] {
        var candidates = explicitCandidates(
            environment["FLEXATTENTION_CUDA_DRIVER"], variable: "FLEXATTENTION_CUDA_DRIVER", names: driverNames)
        candidates += driverNames.map { LibraryCandidate(path: $0, origin: "system loader") }
        let folders = [
            "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
        ]
        for folder in folders where FileSystem.isDirectory(folder) {
            candidates.append(LibraryCandidate(path: "\(folder)/libcuda.so.1", origin: "driver folder"))
        }
        return candidates
    }

    /// A variable naming either the library or its folder.
    static func explicitCandidates(_ value: String?, variable: String, names: [String]) -> [LibraryCandidate] {
        guard let value, !value.isEmpty else { return [] }
        guard FileSystem.isDirectory(value) else {
            return [nvrtcCandidate(path: value, origin: variable)]
        }
        return names.map { nvrtcCandidate(path: "\(value)/\($0)", origin: variable) }
    }

    /// A candidate with the NVRTC builtins of its own folder preloaded (harmless for other libraries: none match).
    private static func nvrtcCandidate(path: String, origin: String) -> LibraryCandidate {
        guard let slash = path.lastIndex(of: "/") else { return LibraryCandidate(path: path, origin: origin) }
        let folder = String(path[..<slash])
        let file = path[path.index(after: slash)...]
        guard file.hasPrefix("libnvrtc.so") else { return LibraryCandidate(path: path, origin: origin) }
        let builtins = FileSystem.contents(of: folder)
            .filter { $0.hasPrefix("libnvrtc-builtins.so.") }
            .map { "\(folder)/\($0)" }
        return LibraryCandidate(path: path, origin: origin, preload: builtins)
    }

    private static func toolkitLibraryFolders(_ root: String) -> [String] {
        ["\(root)/lib64", toolkitTargetFolder(root)]
    }

    /// The toolkit's per-architecture library folder, `targets/<arch>-linux/lib`.
    static func toolkitTargetFolder(_ root: String) -> String {
        #if arch(x86_64)
        "\(root)/targets/x86_64-linux/lib"
        #else
        "\(root)/targets/sbsa-linux/lib"
        #endif
    }

    /// The existing `wheelFolders` (such as `nvidia/cu13/lib`) of every site-packages folder the search knows.
    static func pythonWheelFolders(environment: [String: String], wheelFolders: [String]) -> [String] {
        var prefixes = [String]()
        var sitePackages = [String]()
        if let venv = environment["VIRTUAL_ENV"] { prefixes.append(venv) }
        if let conda = environment["CONDA_PREFIX"] { prefixes.append(conda) }
        if let path = environment["PYTHONPATH"] {
            sitePackages += path.split(separator: ":").map(String.init)
        }
        if let home = environment["HOME"] { prefixes.append("\(home)/.local") }
        prefixes += ["/usr/local", "/usr", "/opt/conda"]
        prefixes += FileSystem.contents(of: "/opt").map { "/opt/\($0)/.venv" }

        for prefix in prefixes {
            let lib = "\(prefix)/lib"
            for version in FileSystem.contents(of: lib) where version.hasPrefix("python3") {
                sitePackages += ["\(lib)/\(version)/site-packages", "\(lib)/\(version)/dist-packages"]
            }
        }
        return sitePackages.flatMap { site in wheelFolders.map { "\(site)/\($0)" } }
            .filter(FileSystem.isDirectory)
    }

    static func installScriptFolders(environment: [String: String]) -> [String] {
        let cacheRoot = KernelCacheLocation.userCacheRoot(environment: environment)
        // Version-sorted newest first: "nvrtc-13.0.88" after "nvrtc-12.9.86" by numeric components.
        let installs = FileSystem.contents(of: cacheRoot)
            .filter { $0.hasPrefix("nvrtc-") && !$0.contains(".tmp.") }
            .sorted { versionComponents($1).lexicographicallyPrecedes(versionComponents($0)) }
        return installs.map { "\(cacheRoot)/\($0)/nvidia/cu13/lib" }
    }

    private static func versionComponents(_ name: String) -> [Int] {
        name.dropFirst("nvrtc-".count).split(separator: ".").map { Int($0) ?? 0 }
    }
}
