#if canImport(Glibc)
import Glibc
#endif

/// The memory a CPU pass takes beyond its outputs (per-thread tiles and workspaces, dQ parts, table-gradient
/// parts), asked for before the pass starts: allocations inside parallel work items cannot fail as an error, so a
/// memory limit too small for the run is met here, as ``FlexAttentionError/outOfMemory(byteCount:)``.
enum CPUWorkingMemory {
    /// Per-thread room for what the estimates leave out (tile programs, block lists, bookkeeping): 4 MiB.
    private static let allowancePerThread = 1 << 20

    /// - Parameters:
    ///   - perThread: Floats one thread holds at once.
    ///   - shared: Floats held across threads.
    /// - Throws: ``FlexAttentionError/outOfMemory(byteCount:)`` when that much memory cannot be had now.
    static func require(perThread: Int, shared: Int) throws {
        let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let threads = min(cores, CPUParallelism.maximumThreads.map { max(1, $0) } ?? cores)
        let (threadFloats, overflow1) = (perThread + allowancePerThread).multipliedReportingOverflow(by: threads)
        let (floats, overflow2) = threadFloats.addingReportingOverflow(shared)
        let (bytes, overflow3) = floats.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        guard !(overflow1 || overflow2 || overflow3) else { throw FlexAttentionError.outOfMemory(byteCount: .max) }
        try Allocation.requireAvailable(bytes)
    }
}
