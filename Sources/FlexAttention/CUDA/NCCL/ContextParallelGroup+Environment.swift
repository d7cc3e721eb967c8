extension ContextParallelGroup {
    /// The group of a job started with one process per GPU, from its launcher's variables.
    ///
    /// - Rank, world size and local rank: `RANK`, `WORLD_SIZE`, `LOCAL_RANK` (torchrun); else
    ///   `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_LOCAL_RANK` (Open MPI); else `PMI_RANK`,
    ///   `PMI_SIZE` and `MPI_LOCALRANKID` or `SLURM_LOCALID`.
    /// - The device: CUDA device `local rank` (with `CUDA_VISIBLE_DEVICES` applied, as everywhere).
    /// - The unique ID: `FLEXATTENTION_NCCL_ID` (256 hex digits, from a process that stays alive: see
    ///   ``NCCLUniqueID``); else `FLEXATTENTION_NCCL_ID_FILE` (``NCCLUniqueID/shared(rank:file:timeout:)``); else
    ///   `NCCL_COMM_ID=host:port`, where rank 0 hosts NCCL's bootstrap.
    ///
    /// The variables are all read and checked before CUDA or NCCL is touched.
    /// - Throws: ``NCCLError/invalidArgument(_:)`` naming the missing or malformed variables; then the errors of
    ///   ``CUDADevice/open(_:)``, ``NCCLUniqueID/shared(rank:file:timeout:)`` and
    ///   ``init(rank:worldSize:device:id:)``.
    public static func fromEnvironment(
        environment: [String: String] = ProcessEnvironment.current
    ) throws -> ContextParallelGroup {
        let launch = try LaunchEnvironment(environment: environment)
        let device = try CUDADevice.open(launch.localRank)
        let id: NCCLUniqueID
        switch launch.idSource {
        case let .given(given): id = given
        case let .file(file): id = try NCCLUniqueID.shared(rank: launch.rank, file: file)
        case .commID: id = try NCCLUniqueID.generate()
        }
        return try ContextParallelGroup(rank: launch.rank, worldSize: launch.worldSize, device: device, id: id)
    }
}
