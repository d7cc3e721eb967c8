/// Where NCCL is looked for, in order (names `libnccl.so.2`, then `libnccl.so`):
/// 0. NCCL already in the process (`dlopen` with `RTLD_NOLOAD`), such as the copy PyTorch loaded: two copies of
///    NCCL in one process do not share state, so the one already there wins.
/// 1. `FLEXATTENTION_NCCL`: the library file itself, or its folder.
/// 2. Python site-packages, folder `nvidia/nccl/lib` (the `nvidia-nccl-cu12` and `-cu13` wheels PyTorch depends
///    on), under the prefixes NVRTC's search walks (``LibrarySearch/pythonWheelFolders(environment:wheelFolders:)``).
///    Unlike NVIDIA's other cu13 wheels, NCCL is not in `nvidia/cu13/lib`.
/// 3. `CUDA_HOME`, then `CUDA_PATH`, then `/usr/local/cuda`: their `lib64`, `lib` and `targets/<arch>-linux/lib`.
/// 4. The system loader (`LD_LIBRARY_PATH`, `ld.so.cache`; the `libnccl2` package installs there).
///
/// NCCL is loaded on first use by ``ContextParallelGroup`` or ``NCCLUniqueID/generate()``; the CPU path and
/// single-GPU plans never look for it.
extension LibrarySearch {
    static let ncclNames = ["libnccl.so.2", "libnccl.so"]

    static func ncclCandidates(environment: [String: String]) -> [LibraryCandidate] {
        var candidates = [LibraryCandidate(path: "libnccl.so.2", origin: "already in this process", onlyIfLoaded: true)]
        candidates += explicitCandidates(
            environment["FLEXATTENTION_NCCL"], variable: "FLEXATTENTION_NCCL", names: ncclNames)

        var folders = pythonWheelFolders(environment: environment, wheelFolders: ["nvidia/nccl/lib"])
            .map { ($0, "Python site-packages") }
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment[variable], !root.isEmpty {
                folders += ncclToolkitFolders(root).map { ($0, variable) }
            }
        }
        folders += ncclToolkitFolders("/usr/local/cuda").map { ($0, "default CUDA toolkit") }
        // Only folders that exist: a missing toolkit is one line of the error, not three.
        for (folder, origin) in folders where FileSystem.isDirectory(folder) {
            candidates += ncclNames.map { LibraryCandidate(path: "\(folder)/\($0)", origin: origin) }
        }
        candidates += ncclNames.map { LibraryCandidate(path: $0, origin: "system loader") }
        return candidates
    }

    /// Toolkit folders NCCL is installed into; tarball installs put it in `lib`, unlike the toolkit's own libraries.
    private static func ncclToolkitFolders(_ root: String) -> [String] {
        ["\(root)/lib64", "\(root)/lib", toolkitTargetFolder(root)]
    }
}
