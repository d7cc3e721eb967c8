import Foundation
import Testing
@testable import FlexAttention

/// NCCL's loading, unique IDs and the launcher environment: everything that runs without a GPU or NCCL.
@Suite("NCCL search, unique IDs and the launcher environment")
struct NCCLTests {
    /// 128 distinct bytes spelled in upper case, so a round trip shows the printed form is lower case.
    static let sampleBytes = (0..<128).map { UInt8(($0 * 37 + 11) % 256) }
    static let sampleHex = sampleBytes.map { String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined()

    @Test("search order: already loaded, FLEXATTENTION_NCCL, site-packages, CUDA_HOME, CUDA_PATH, system loader")
    func searchOrder() throws {
        let root = CUDATestSupport.temporaryDirectory()
        let explicit = "\(root)/nccl"
        let wheel = "\(root)/venv/lib/python3.12/site-packages/nvidia/nccl/lib"
        let home = "\(root)/cuda-home"
        let path = "\(root)/cuda-path"
        let folders = [explicit, wheel, "\(home)/lib64", "\(home)/lib", LibrarySearch.toolkitTargetFolder(path)]
        for folder in folders { try FileSystem.createDirectories(folder) }
        let environment = [
            "FLEXATTENTION_NCCL": explicit, "VIRTUAL_ENV": "\(root)/venv", "CUDA_HOME": home, "CUDA_PATH": path,
            "HOME": root,
        ]
        let candidates = LibrarySearch.ncclCandidates(environment: environment)

        #expect(candidates.first == LibraryCandidate(path: "libnccl.so.2", origin: "already in this process", onlyIfLoaded: true))
        // Folders of this machine (a real /usr/local/cuda, say) may come between ours; ours keep their order.
        let ours = candidates.filter { $0.path.hasPrefix(root) }
        let expected = folders.flatMap { folder in ["libnccl.so.2", "libnccl.so"].map { "\(folder)/\($0)" } }
        #expect(ours.map(\.path) == expected)
        #expect(ours.map(\.origin) == [
            "FLEXATTENTION_NCCL", "FLEXATTENTION_NCCL", "Python site-packages", "Python site-packages",
            "CUDA_HOME", "CUDA_HOME", "CUDA_HOME", "CUDA_HOME", "CUDA_PATH", "CUDA_PATH",
        ])
        #expect(Array(candidates.suffix(2)) == [
            LibraryCandidate(path: "libnccl.so.2", origin: "system loader"),
            LibraryCandidate(path: "libnccl.so", origin: "system loader"),
        ])
        #expect(candidates.dropFirst().allSatisfy { !$0.onlyIfLoaded })
    }

    @Test("FLEXATTENTION_NCCL naming a file is tried as given, right after the copy already loaded")
    func explicitFile() {
        let candidates = LibrarySearch.ncclCandidates(environment: ["FLEXATTENTION_NCCL": "/custom/libnccl.so.2.21.5"])
        #expect(candidates.dropFirst().first == LibraryCandidate(path: "/custom/libnccl.so.2.21.5", origin: "FLEXATTENTION_NCCL"))
        #expect(candidates.filter { $0.origin == "FLEXATTENTION_NCCL" }.count == 1)
        // A missing toolkit adds no lines to the error.
        #expect(!candidates.contains { $0.path.hasPrefix("/nonexistent") })
    }

    @Test("a file that is not a library gives libraryNotFound listing it with its origin and the loader's reason")
    func notALibrary() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories(root)
        let file = "\(root)/libnccl.so.2"
        try FileSystem.writeAtomically(Array("not a shared library\n".utf8), to: file)
        let candidates = LibrarySearch.ncclCandidates(environment: ["FLEXATTENTION_NCCL": file])
            .filter { $0.onlyIfLoaded || $0.origin == "FLEXATTENTION_NCCL" }
        #expect {
            try NCCLLibrary.load(candidates)
        } throws: { error in
            guard let error = error as? NCCLError, case let .libraryNotFound(searched) = error else { return false }
            return searched.count == 2 && searched[0].contains("not loaded in this process")
                && searched[1].hasPrefix("\(file) (FLEXATTENTION_NCCL): ") && searched[1].count > "\(file) (FLEXATTENTION_NCCL): ".count
                && error.description.contains(file) && error.description.contains("FLEXATTENTION_NCCL")
        }
    }

    @Test("versions and result codes read as NCCL names them")
    func versionsAndResults() {
        #expect(NCCLAPI.versionString(2_21_05) == "2.21.5")
        #expect(NCCLAPI.versionString(NCCLAPI.minimumVersion) == "2.18.0")
        let error = NCCLError.call(function: "ncclSend", result: 2, message: "unhandled system error")
        #expect(error.description == "ncclSend failed: ncclSystemError (2): unhandled system error")
        #expect(NCCLAPI.resultName(42) == "ncclResult 42")
    }

    @Test("a unique ID's hex round-trips, printed in lower case, whitespace around it ignored")
    func hexRoundTrip() throws {
        let id = try NCCLUniqueID(hex: "  \(Self.sampleHex)\n")
        #expect(id.bytes == Self.sampleBytes)
        #expect(id.hex == Self.sampleHex.lowercased())
        #expect(id.hex.count == 256)
        #expect(try NCCLUniqueID(hex: id.hex) == id)
        let cBytes = withUnsafeBytes(of: id.cValue) { Array($0) }
        #expect(cBytes == Self.sampleBytes)
    }

    @Test("bad hex is a typed error saying what is wrong", arguments: [
        (String(repeating: "a", count: 255), "got 255 characters"),
        (String(repeating: "a", count: 258), "got 258 characters"),
        ("", "got 0 characters"),
        (String(repeating: "a", count: 10) + "g" + String(repeating: "a", count: 245), "character 10 (\"g\")"),
        ("\u{FF11}" + String(repeating: "a", count: 255), "character 0"),  // a full-width digit is not hex
    ])
    func badHex(text: String, reason: String) {
        #expect {
            try NCCLUniqueID(hex: text)
        } throws: { error in
            guard case let .uniqueID(message) = error as? NCCLError else { return false }
            return message.contains(reason)
        }
    }

    @Test("a rank other than 0 reads the ID rank 0 wrote")
    func sharedFileReadByOtherRank() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories(root)
        let file = "\(root)/job.id"
        try FileSystem.writeAtomically(Array("\(Self.sampleHex.lowercased())\n".utf8), to: file)
        let id = try NCCLUniqueID.shared(rank: 3, file: file, timeout: .seconds(5))
        #expect(id.bytes == Self.sampleBytes)
    }

    @Test("a rank other than 0 waits for a file written after it started looking")
    func sharedFileWrittenLater() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories(root)
        let file = "\(root)/job.id"
        let writer = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            try? FileSystem.writeAtomically(Array(Self.sampleHex.utf8), to: file)
        }
        writer.start()
        let id = try NCCLUniqueID.shared(rank: 1, file: file, timeout: .seconds(30))
        #expect(id.bytes == Self.sampleBytes)
    }

    @Test("waiting ends with a typed error after the timeout, saying why")
    func sharedFileTimeout() throws {
        let root = CUDATestSupport.temporaryDirectory()
        try FileSystem.createDirectories(root)
        let missing = "\(root)/never.id"
        let start = ContinuousClock.now
        #expect {
            try NCCLUniqueID.shared(rank: 1, file: missing, timeout: .milliseconds(200))
        } throws: { error in
            guard case let .uniqueID(message) = error as? NCCLError else { return false }
            return message.contains(missing) && message.contains("does not exist") && message.contains("rank 1")
        }
        #expect(ContinuousClock.now - start >= .milliseconds(200))

        let garbled = "\(root)/garbled.id"
        try FileSystem.writeAtomically(Array("zz".utf8), to: garbled)
        #expect {
            try NCCLUniqueID.shared(rank: 2, file: garbled, timeout: .milliseconds(50))
        } throws: { error in
            guard case let .uniqueID(message) = error as? NCCLError else { return false }
            return message.contains("holds no valid ID") && message.contains("got 2 characters")
        }
        #expect(throws: NCCLError.invalidArgument("rank -1 is negative")) {
            try NCCLUniqueID.shared(rank: -1, file: missing)
        }
    }

    @Test("fromEnvironment names what is missing or wrong before touching CUDA", arguments: [
        ([:], ["RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"]),
        (["RANK": "0"], ["RANK is set (torchrun) but WORLD_SIZE and LOCAL_RANK are not"]),
        (["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"], ["OMPI_COMM_WORLD_LOCAL_RANK is not"]),
        (["PMI_RANK": "1", "PMI_SIZE": "2"], ["MPI_LOCALRANKID is not"]),
        (["RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"], ["RANK=2 is outside 0..<2 (WORLD_SIZE)"]),
        (["RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0"], ["RANK=\"one\" is not a non-negative integer"]),
        (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"], ["FLEXATTENTION_NCCL_ID_FILE", "NCCL_COMM_ID", "FLEXATTENTION_NCCL_ID "]),
    ])
    func environmentErrors(environment: [String: String], phrases: [String]) {
        #expect {
            try ContextParallelGroup.fromEnvironment(environment: environment)
        } throws: { error in
            guard case let .invalidArgument(message) = error as? NCCLError else { return false }
            return phrases.allSatisfy(message.contains)
        }
    }

    @Test("a malformed FLEXATTENTION_NCCL_ID fails before CUDA too")
    func environmentBadID() {
        let environment = ["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "FLEXATTENTION_NCCL_ID": "abc"]
        #expect {
            try ContextParallelGroup.fromEnvironment(environment: environment)
        } throws: { error in
            guard case let .uniqueID(message) = error as? NCCLError else { return false }
            return message.contains("got 3 characters")
        }
    }

    @Test("each launcher's variables are read, and the ID's source chosen in order")
    func launchEnvironments() throws {
        let openMPI = try LaunchEnvironment(environment: [
            "OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "FLEXATTENTION_NCCL_ID_FILE": "/shared/job.id", "NCCL_COMM_ID": "10.0.0.1:29600",
        ])
        #expect(openMPI.rank == 5 && openMPI.worldSize == 8 && openMPI.localRank == 1)
        #expect(openMPI.idSource == .file("/shared/job.id"))
        let pmi = try LaunchEnvironment(environment: [
            "PMI_RANK": "0", "PMI_SIZE": "1", "SLURM_LOCALID": "0", "NCCL_COMM_ID": "10.0.0.1:29600",
        ])
        #expect(pmi.rank == 0 && pmi.worldSize == 1 && pmi.localRank == 0)
        #expect(pmi.idSource == .commID)
        let torchrun = try LaunchEnvironment(environment: [
            "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "FLEXATTENTION_NCCL_ID": Self.sampleHex,
            "FLEXATTENTION_NCCL_ID_FILE": "/shared/job.id",
        ])
        #expect(torchrun.idSource == .given(try NCCLUniqueID(hex: Self.sampleHex)))
    }

    @Test("a one-process group refuses an empty device list before loading NCCL")
    func emptyDeviceList() {
        #expect(throws: NCCLError.invalidArgument("a context-parallel group needs at least one device")) {
            try ContextParallelGroup(devices: [])
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
