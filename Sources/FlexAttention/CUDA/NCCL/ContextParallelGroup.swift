import Synchronization

/// The NCCL communicators of a context-parallel job: one per GPU, each a rank of one group of ``worldSize`` ranks.
///
/// Two ways to make one:
/// - one process drives every GPU of the job: ``init(devices:)``;
/// - one process per GPU (`torchrun`, `mpirun`): ``init(rank:worldSize:device:id:)``, or ``fromEnvironment(environment:)``
///   which reads the launcher's variables.
///
/// NCCL (2.18 or newer) is loaded on first use; the CPU path never looks for it. The first of these that loads is
/// used, names `libnccl.so.2` then `libnccl.so`:
/// 1. the NCCL already in the process (PyTorch's, say): two copies in one process would not share state;
/// 2. `FLEXATTENTION_NCCL`, the library file or its folder;
/// 3. Python site-packages, `nvidia/nccl/lib` (the `nvidia-nccl-cu12`/`-cu13` wheels), under `VIRTUAL_ENV`,
///    `CONDA_PREFIX`, `PYTHONPATH`, `~/.local`, `/usr/local`, `/usr`, `/opt/conda` and `/opt/*/.venv`;
/// 4. `CUDA_HOME`, `CUDA_PATH`, then `/usr/local/cuda`: `lib64`, `lib` and `targets/<arch>-linux/lib`;
/// 5. the system loader (`LD_LIBRARY_PATH`, `ld.so.cache`).
///
/// When none loads, ``NCCLError/libraryNotFound(searched:)`` lists every place tried and why it failed.
///
/// Before the first communicator is created, `NCCL_NVLS_ENABLE` is set to 0 unless the user set it: NVLink SHARP
/// needs multicast objects, which are off on the machines this library targets and which its transfers never use.
///
/// A failed NCCL call leaves the communicators in an unknown state, so it marks the group broken: every later call
/// throws ``NCCLError/broken(_:)`` with the first failure's text, and the communicators are aborted rather than
/// destroyed when the group is released. Calls may come from any thread; ``abort()`` is meant for a watchdog thread
/// when another thread is stuck inside NCCL.
public final class ContextParallelGroup: Sendable {
    /// The number of ranks in the whole job.
    public let worldSize: Int
    /// The global ranks this process drives, in local order: all of `0..<worldSize` for ``init(devices:)``, one
    /// rank for ``init(rank:worldSize:device:id:)``.
    public let ranks: [Int]
    /// The device of each local rank, in the order of ``ranks``.
    public let devices: [CUDADevice]

    let api: NCCLAPI
    private let communicatorAddresses: [UInt]  // the ncclComm_t of each local rank, as integers so the class is Sendable
    private let state = Mutex(State())

    private struct State {
        /// The first failure's text; set, the group refuses every call.
        var failure: String?
        /// Whether the communicators were aborted already, so that deinit leaves them alone.
        var released = false
    }

    /// The NCCL release in use, e.g. "2.21.5".
    public var ncclVersion: String { api.versionString }

    /// One process drives all of `devices` (`ncclCommInitAll`); global rank `i` runs on `devices[i]`.
    ///
    /// With several local ranks, a step's transfers for all of them must be queued between one
    /// `ncclGroupStart`/`ncclGroupEnd` pair, as NCCL requires of one thread driving several GPUs.
    /// - Throws: ``NCCLError/invalidArgument(_:)`` for an empty list or a device listed twice (before NCCL is
    ///   loaded); other ``NCCLError`` cases when NCCL cannot be loaded or fails.
    public convenience init(devices: [CUDADevice]) throws {
        guard !devices.isEmpty else {
            throw NCCLError.invalidArgument("a context-parallel group needs at least one device")
        }
        let ordinals = devices.map(\.ordinal)
        if let repeated = ordinals.enumerated().first(where: { ordinals[..<$0.offset].contains($0.element) }) {
            throw NCCLError.invalidArgument(
                "device \(repeated.element) is listed twice in \(ordinals): NCCL cannot run two ranks on one GPU")
        }
        let api = try NCCLLibrary.api()
        var handles = [NCCLComm?](repeating: nil, count: devices.count)
        try api.check(
            api.ncclCommInitAll(&handles, Int32(devices.count), ordinals.map(Int32.init)),
            "ncclCommInitAll(devices \(ordinals))")
        let communicators = try Self.verified(
            handles, api: api, worldSize: devices.count, ranks: Array(devices.indices), devices: devices)
        self.init(api: api, worldSize: devices.count, ranks: Array(devices.indices), devices: devices,
                  communicators: communicators)
    }

    /// This process is rank `rank` of `worldSize`, on `device` (`ncclCommInitRank`). Every rank must pass the same
    /// `id` and `worldSize`; the call returns once all of them have joined.
    /// - Throws: ``NCCLError/invalidArgument(_:)`` when `rank` is not in `0..<worldSize` (before NCCL is loaded);
    ///   ``CUDAError`` when the device's context cannot be made current; other ``NCCLError`` cases from NCCL.
    public convenience init(rank: Int, worldSize: Int, device: CUDADevice, id: NCCLUniqueID) throws {
        guard worldSize >= 1, worldSize <= Int(Int32.max) else {
            throw NCCLError.invalidArgument("world size \(worldSize) must be between 1 and \(Int32.max)")
        }
        guard (0..<worldSize).contains(rank) else {
            throw NCCLError.invalidArgument("rank \(rank) is outside 0..<\(worldSize) (the world size)")
        }
        let api = try NCCLLibrary.api()
        try device.bind()  // NCCL creates the communicator on the calling thread's current device
        var handle: NCCLComm?
        try api.check(
            api.ncclCommInitRank(&handle, Int32(worldSize), id.cValue, Int32(rank)),
            "ncclCommInitRank(rank \(rank) of \(worldSize), device \(device.ordinal))")
        let communicators = try Self.verified(
            [handle], api: api, worldSize: worldSize, ranks: [rank], devices: [device])
        self.init(api: api, worldSize: worldSize, ranks: [rank], devices: [device], communicators: communicators)
    }

    private init(api: NCCLAPI, worldSize: Int, ranks: [Int], devices: [CUDADevice], communicators: [NCCLComm]) {
        self.api = api
        self.worldSize = worldSize
        self.ranks = ranks
        self.devices = devices
        communicatorAddresses = communicators.map { UInt(bitPattern: $0) }
    }

    /// The new communicators, once NCCL confirms each one's size, rank and device; aborted when it does not.
    private static func verified(
        _ handles: [NCCLComm?], api: NCCLAPI, worldSize: Int, ranks: [Int], devices: [CUDADevice]
    ) throws -> [NCCLComm] {
        let communicators = handles.compactMap { $0 }
        do {
            guard communicators.count == handles.count else {
                throw NCCLError.invalidArgument("NCCL reported success but returned no communicator")
            }
            for (index, communicator) in communicators.enumerated() {
                var count: Int32 = 0
                var rank: Int32 = 0
                var device: Int32 = 0
                try api.check(api.ncclCommCount(communicator, &count), "ncclCommCount", comm: communicator)
                try api.check(api.ncclCommUserRank(communicator, &rank), "ncclCommUserRank", comm: communicator)
                try api.check(api.ncclCommCuDevice(communicator, &device), "ncclCommCuDevice", comm: communicator)
                let expected = (worldSize, ranks[index], devices[index].ordinal)
                guard (Int(count), Int(rank), Int(device)) == expected else {
                    throw NCCLError.invalidArgument(
                        "NCCL made rank \(rank) of \(count) on device \(device), not rank \(expected.1) of "
                            + "\(expected.0) on device \(expected.2)")
                }
            }
            return communicators
        } catch {
            for communicator in communicators { _ = api.ncclCommAbort(communicator) }
            throw error
        }
    }

    /// The communicator of local rank `localIndex` (an index into ``ranks``).
    func communicator(_ localIndex: Int) -> NCCLComm? {
        NCCLComm(bitPattern: communicatorAddresses[localIndex])
    }

    /// Polls every communicator for an error in work already queued (`ncclCommGetAsyncError`). Call it where the
    /// job waits anyway (after a stream synchronisation) and from a watchdog.
    /// - Throws: ``NCCLError/asyncError(rank:result:message:)``, after which the group is broken;
    ///   ``NCCLError/broken(_:)`` when it already was.
    public func check() throws {
        for index in ranks.indices {
            let communicator = communicator(index)
            var asyncResult: Int32 = 0
            try perform("ncclCommGetAsyncError(rank \(ranks[index]))", comm: communicator) {
                api.ncclCommGetAsyncError(communicator, &asyncResult)
            }
            guard asyncResult != 0, asyncResult != NCCLAPI.inProgress else { continue }
            let error = NCCLError.asyncError(
                rank: ranks[index], result: asyncResult, message: api.message(for: asyncResult, comm: communicator))
            markBroken(error.description)
            throw error
        }
    }

    /// Aborts every communicator (`ncclCommAbort`), stopping their queued and running work; a thread blocked in
    /// NCCL returns with an error. Every later call throws ``NCCLError/broken(_:)``. Calling it again does nothing.
    public func abort() {
        let mustAbort = state.withLock { state in
            if state.failure == nil { state.failure = "abort() was called" }
            defer { state.released = true }
            return !state.released
        }
        guard mustAbort else { return }
        for index in ranks.indices { _ = api.ncclCommAbort(communicator(index)) }
    }

    /// Runs one NCCL call on a usable group; a failure marks the group broken.
    func perform(_ function: @autoclosure () -> String, comm: NCCLComm?, _ call: () -> Int32) throws {
        try ensureUsable()
        try record(call(), function(), comm: comm)
    }

    /// Throws ``NCCLError/call(function:result:message:)`` for a failed result, marking the group broken first.
    func record(_ result: Int32, _ function: @autoclosure () -> String, comm: NCCLComm?) throws {
        guard result != 0 else { return }
        let error = api.error(result, function(), comm: comm)
        markBroken(error.description)
        throw error
    }

    func ensureUsable() throws {
        if let failure = state.withLock({ $0.failure }) { throw NCCLError.broken(failure) }
    }

    /// Keeps the first failure's text: later ones are usually its consequences.
    func markBroken(_ reason: String) {
        state.withLock { state in
            if state.failure == nil { state.failure = reason }
        }
    }

    deinit {
        let (failure, released) = state.withLock { ($0.failure, $0.released) }
        guard !released else { return }
        // Errors here cannot be reported; communicators that do not finalise cleanly are aborted instead.
        guard failure == nil, finalizeAll() else {
            for index in ranks.indices { _ = api.ncclCommAbort(communicator(index)) }
            return
        }
        for index in ranks.indices { _ = api.ncclCommDestroy(communicator(index)) }
    }

    /// Flushes every communicator's work. They are finalised in one group because ranks driven by one thread would
    /// otherwise wait for each other; destroying a finalised communicator then only frees local memory. Without
    /// `ncclCommFinalize`, `ncclCommDestroy` finalises by itself.
    private func finalizeAll() -> Bool {
        guard let finalize = api.ncclCommFinalize else { return true }
        guard api.ncclGroupStart() == 0 else { return false }
        let finalized = ranks.indices.map { finalize(communicator($0)) }.allSatisfy { $0 == 0 }
        return api.ncclGroupEnd() == 0 && finalized
    }
}
