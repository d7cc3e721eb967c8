import Glibc

/// NCCL, loaded on first use and kept for the life of the process, like ``CUDADriver``: the outcome, success or
/// the error listing what was searched, is computed once. ``LibrarySearch`` documents where it is looked for.
enum NCCLLibrary {
    private static let loaded: Result<NCCLAPI, NCCLError> = Result { () throws(NCCLError) in
        disableMulticastUnlessSet()
        return try load(LibrarySearch.ncclCandidates(environment: ProcessEnvironment.current))
    }

    static func api() throws(NCCLError) -> NCCLAPI {
        try loaded.get()
    }

    /// The first of `candidates` that loads, with its functions resolved; tests pass their own candidates, since
    /// the process-wide result is fixed at the first call.
    static func load(_ candidates: [LibraryCandidate]) throws(NCCLError) -> NCCLAPI {
        var searched = [String]()
        guard let library = DynamicLibrary.firstLoadable(candidates, searched: &searched) else {
            throw .libraryNotFound(searched: searched)
        }
        return try NCCLAPI(library: library)
    }

    /// Sets `NCCL_NVLS_ENABLE=0` unless the user set it. NVLink SHARP (NVLS) needs multicast objects, which are
    /// off on the machines this library runs on and which our transfers never use; left on, NCCL may try to set
    /// them up at communicator creation. This runs before any communicator exists. NCCL reads the variable once
    /// per process, so it has no effect when another library (PyTorch) already made a communicator.
    private static func disableMulticastUnlessSet() {
        setenv("NCCL_NVLS_ENABLE", "0", 0)
    }
}
