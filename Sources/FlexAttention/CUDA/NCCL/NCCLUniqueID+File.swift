import Glibc

extension NCCLUniqueID {
    /// How often a waiting rank looks for the file.
    private static let pollInterval: UInt32 = 20_000  // microseconds

    /// One ID for every process of a job, handed over through a file all of them can see (a shared file system
    /// when the job spans nodes).
    ///
    /// Rank 0 calls ``generate()`` and writes the ID's ``hex`` to a temporary file beside `file`, then renames it
    /// over `file`, so no rank can read a partial ID. Every other rank polls until `file` holds a complete ID, and
    /// throws after `timeout`. Rank 0 must stay alive while the others connect, as ``generate()`` explains.
    ///
    /// Use a path unique to the job (with the job's ID in it) or remove the file before launching: a file left by
    /// an earlier job holds a complete but dead ID, which the other ranks would take.
    /// - Throws: ``NCCLError/uniqueID(_:)`` when rank 0 cannot write the file or another rank finds no valid ID in
    ///   time; ``NCCLError/invalidArgument(_:)`` for a negative rank; rank 0's ``generate()`` errors.
    public static func shared(rank: Int, file: String, timeout: Duration = .seconds(120)) throws -> NCCLUniqueID {
        guard rank >= 0 else { throw NCCLError.invalidArgument("rank \(rank) is negative") }
        guard rank == 0 else { return try waitForFile(file, rank: rank, timeout: timeout) }
        let id = try generate()
        do {
            try FileSystem.writeAtomically(Array("\(id.hex)\n".utf8), to: file)
        } catch {
            throw NCCLError.uniqueID("rank 0 cannot write \(file): \(error)")
        }
        return id
    }

    private static func waitForFile(_ file: String, rank: Int, timeout: Duration) throws -> NCCLUniqueID {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var problem = "it does not exist"
        while true {
            if let bytes = FileSystem.read(file) {
                do throws(NCCLError) {
                    return NCCLUniqueID(bytes: try decode(hex: String(decoding: bytes, as: UTF8.self)))
                } catch {
                    guard case let .uniqueID(reason) = error else { throw error }
                    problem = "it holds no valid ID (\(reason))"
                }
            } else if FileSystem.exists(file) {
                problem = "it exists but cannot be read (check its permissions)"
            }
            guard clock.now < deadline else {
                throw NCCLError.uniqueID(
                    "rank \(rank) waited \(timeout) for rank 0 to write \(file), but \(problem); check that rank 0 "
                        + "started and that every rank sees the same path")
            }
            usleep(pollInterval)
        }
    }
}
