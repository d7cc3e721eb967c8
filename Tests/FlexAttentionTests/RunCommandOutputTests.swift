@testable import FlexAttention
import Foundation
import Glibc
import Testing

/// Where `flexattn run` writes: existing files survive every failure, one file is not two outputs, special files
/// are written through and never replaced, and temporary files neither limit names nor pile up.
@Suite("flexattn run output files",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct RunCommandOutputTests {
    static let base = RunCommandErrorTests.base
    static let backward = RunCommandErrorTests.backward
    static let old = Array("old contents".utf8)

    /// Fixtures plus `names` holding ``old``.
    static func folder(withOld names: [String]) throws -> ScratchFolder {
        let folder = try RunCommandErrorTests.fixtures()
        for name in names { try folder.write(old, to: name) }
        return folder
    }

    static func contents(_ folder: ScratchFolder, _ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: folder.url.appendingPathComponent(name)))
    }

    /// A failed run: status 1, one line on stderr, the same names, and every file in `kept` still ``old``.
    static func expectRefused(_ folder: ScratchFolder, _ arguments: [String], kept: [String]) throws {
        let before = try folder.names()
        let result = try folder.run(arguments)
        #expect(result.status == 1 && result.standardError.split(separator: "\n").count == 1, "\(result.standardError)")
        #expect(try folder.names() == before)
        for name in kept { #expect(try contents(folder, name) == old, "\(name) changed") }
    }

    @Test("an output that cannot be written leaves every existing output as it was")
    func failureKeepsFiles() throws {
        let lseFolder = try Self.folder(withOld: ["o.npy"])
        try Self.expectRefused(lseFolder, Self.base + ["--lse", "folder"], kept: ["o.npy"])
        let outputs = ["o.npy", "lse.npy", "dq.npy", "dk.npy"]
        let gradientFolder = try Self.folder(withOld: outputs)
        try Self.expectRefused(
            gradientFolder,
            Self.base + ["--lse", "lse.npy", "--grad-out", "do.npy", "--dq", "dq.npy", "--dk", "dk.npy", "--dv", "folder"],
            kept: outputs)
    }

    @Test("two spellings of one output file are refused", arguments: ["./o.npy", "folder/../o.npy", "ABSOLUTE", "hard.npy"])
    func twoSpellings(spelling: String) throws {
        let folder = try Self.folder(withOld: ["o.npy"])
        try FileManager.default.linkItem(
            at: folder.url.appendingPathComponent("o.npy"), to: folder.url.appendingPathComponent("hard.npy"))
        let path = spelling == "ABSOLUTE" ? folder.url.appendingPathComponent("o.npy").path : spelling
        try Self.expectRefused(folder, Self.base + ["--lse", path], kept: ["o.npy"])
    }

    @Test("two spellings of one new output file are refused")
    func twoSpellingsOfNewFile() throws {
        let folder = try RunCommandErrorTests.fixtures()
        try Self.expectRefused(folder, Self.base + ["--lse", "folder/../o.npy"], kept: [])
    }

    @Test("an output may replace an input, after it is read")
    func outputOverInput() throws {
        let folder = try RunCommandErrorTests.fixtures()
        let result = try folder.run(["--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "v.npy"])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try folder.read("v.npy").shape == [1, 4, 3, 4])
    }

    @Test("a symbolic link to a file: the target is replaced, the link kept")
    func symbolicLink() throws {
        let folder = try Self.folder(withOld: ["target.npy"])
        try FileManager.default.createSymbolicLink(atPath: folder.url.appendingPathComponent("link.npy").path,
                                                   withDestinationPath: "target.npy")
        let result = try folder.run(Self.base.dropLast(2) + ["--out", "link.npy"])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: folder.url.appendingPathComponent("link.npy").path)
                == "target.npy")
        #expect(try folder.read("target.npy").shape == [1, 4, 3, 4])
    }

    @Test("a symbolic link to nothing is refused and kept")
    func danglingLink() throws {
        let folder = try RunCommandErrorTests.fixtures()
        try FileManager.default.createSymbolicLink(atPath: folder.url.appendingPathComponent("link.npy").path,
                                                   withDestinationPath: "missing.npy")
        try Self.expectRefused(folder, Self.base.dropLast(2) + ["--out", "link.npy"], kept: [])
    }

    @Test("a character device is written through, not replaced")
    func characterDevice() throws {
        let folder = try RunCommandErrorTests.fixtures()
        let link = folder.url.appendingPathComponent("null.npy").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/dev/null")
        let before = try folder.names()
        let result = try folder.run(Self.base.dropLast(2) + ["--out", "null.npy"])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "/dev/null")
        #expect(try folder.names() == before)
    }

    @Test("a FIFO is written through and stays a FIFO")
    func fifo() throws {
        let folder = try RunCommandErrorTests.fixtures()
        let path = folder.url.appendingPathComponent("o.fifo").path
        try #require(mkfifo(path, 0o644) == 0)
        guard let flexattnExecutable else { return }
        let process = Process()
        process.executableURL = flexattnExecutable
        process.arguments = ["run"] + Self.base.dropLast(2) + ["--out", "o.fifo"]
        process.currentDirectoryURL = folder.url
        try process.run()
        let bytes = try #require(FileHandle(forReadingAtPath: path)).readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try NumPyArray(decoding: Array(bytes)).shape == [1, 4, 3, 4])
        var status = stat()
        #expect(lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFIFO)
    }

    @Test("an output name as long as the file system allows")
    func longName() throws {
        let folder = try RunCommandErrorTests.fixtures()
        let name = String(repeating: "o", count: 251) + ".npy"
        let result = try folder.run(Self.base.dropLast(2) + ["--out", name])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try folder.read(name).shape == [1, 4, 3, 4])
    }

    @Test("temporary files of runs that are gone are removed, those of live processes kept")
    func staleTemporaries() throws {
        let folder = try RunCommandErrorTests.fixtures()
        let stale = ".flexattn-\(Int32.max)-abc123"  // above any pid_max: no such process
        let live = ".flexattn-\(getpid())-abc123"
        try folder.write([1], to: stale)
        try folder.write([2], to: live)
        let result = try folder.run(Self.base)
        #expect(result.status == 0, "\(result.standardError)")
        let names = try folder.names()
        #expect(!names.contains(stale) && names.contains(live) && names.contains("o.npy"))
        #expect(names.filter { $0.hasPrefix(".flexattn-") } == [live])
    }

    @Test("a run without the memory it needs fails with the size asked for")
    func outOfMemory() throws {
        let folder = try RunCommandErrorTests.fixtures()
        // [1, 1, 2^24, 2^10] Float32: 64 GiB, read from a pipe (no size to check) under a 2 GB address-space limit.
        try folder.write(
            npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 16777216, 1024), }"), to: "huge.npy")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -v 2000000 && cat huge.npy | exec \"$0\" run --q /dev/stdin --k k.npy --v v.npy --out o.npy",
                             try #require(flexattnExecutable).path]
        process.currentDirectoryURL = folder.url
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(message == "flexattn: --q /dev/stdin: out of memory: cannot allocate 68719476736 bytes\n")
        #expect(!(try folder.names()).contains("o.npy"))
    }
}
