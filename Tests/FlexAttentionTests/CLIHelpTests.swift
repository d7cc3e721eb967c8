import Foundation
import Testing

/// What one run of `flexattn` printed and how it ended.
struct CommandOutput {
    let status: Int32
    let standardOutput: String
    let standardError: String

    /// Runs the built `flexattn` with `arguments`.
    init(_ arguments: [String]) throws {
        guard let flexattnExecutable else { throw CocoaError(.fileNoSuchFile) }
        let process = Process()
        process.executableURL = flexattnExecutable
        process.arguments = arguments
        let outputPipe = Pipe(), errorPipe = Pipe()
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        try process.run()
        // Read one after the other: stderr holds at most a line or two, far less than a pipe's buffer.
        let outputData = outputPipe.fileHandleForReading.readDataToEndOfFile()
        let errorData = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        status = process.terminationStatus
        standardOutput = String(decoding: outputData, as: UTF8.self)
        standardError = String(decoding: errorData, as: UTF8.self)
    }
}

/// The command line itself: help for every command, and one line on stderr with exit status 1 for every mistake.
@Suite("flexattn help and command-line errors",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct CLIHelpTests {
    /// Every command and option the usage must name.
    static let everyName = [
        "flexattn run", "flexattn bench", "flexattn info", "flexattn check", "flexattn kernel-source",
        "flexattn cuda-bench", "--q Q.npy", "--k K.npy", "--v V.npy", "--out O.npy", "--lse", "--scale", "--mask",
        "--score", "--table NAME=FILE.npy", "--grad-out", "--dq", "--dk", "--dv", "--dtable NAME=FILE.npy", "--json",
        "--device cpu|cuda|cuda:N", "--sequence N", "--head-dim N", "--mods", "--model", "--device cuda[:N]", "--seed",
        "--filter", "--arch sm_90a|sm_80", "--ptx", "--compile", "--causal", "--backward", "B H S D [bf16|fp16]",
    ]

    @Test("the usage of every command and option, exit status 0", arguments: [[], ["--help"], ["-h"], ["help"]])
    func usage(arguments: [String]) throws {
        let result = try CommandOutput(arguments)
        #expect(result.status == 0)
        #expect(result.standardError.isEmpty, "stderr \(result.standardError.debugDescription)")
        for name in Self.everyName {
            #expect(result.standardOutput.contains(name), "\(arguments): no \(name) in \(result.standardOutput)")
        }
    }

    static let commandOptions: [(String, [String])] = [
        ("run", ["--q", "--k", "--v", "--out", "--lse", "--scale", "--device", "--mask", "--score", "--table",
                 "--grad-out", "--dq", "--dk", "--dv", "--dtable"]),
        ("bench", ["--json", "--device", "--sequence", "--head-dim", "--mods", "--model"]),
        ("info", []),
        ("check", ["--device", "--seed", "--filter"]),
        ("kernel-source", ["<NAME>", "--arch", "--ptx", "--compile"]),
        ("cuda-bench", ["--device", "--causal", "--backward", "--any-order", "<B>", "<H>", "<S>", "<D>", "<bf16|fp16>"]),
    ]

    @Test("a command's help lists its options, exit status 0", arguments: commandOptions)
    func commandHelp(command: String, options: [String]) throws {
        for arguments in [[command, "--help"], [command, "-h"], ["help", command]] {
            let result = try CommandOutput(arguments)
            #expect(result.status == 0, "\(arguments): status \(result.status)")
            #expect(result.standardError.isEmpty, "\(arguments): stderr \(result.standardError.debugDescription)")
            #expect(result.standardOutput.contains("USAGE: flexattn \(command)"), "\(arguments): \(result.standardOutput)")
            for option in options + ["--help"] {
                #expect(result.standardOutput.contains(option), "\(arguments): no \(option) in \(result.standardOutput)")
            }
        }
    }

    static let mistakes: [(String, [String])] = [
        ("unknown command", ["bogus"]),
        ("unknown option", ["--bogus"]),
        ("unknown bench option", ["bench", "--causal"]),
        ("missing value", ["bench", "--sequence"]),
        ("not a positive integer", ["bench", "--head-dim", "0"]),
        ("unknown device", ["bench", "--device", "tpu"]),
        ("device given twice", ["bench", "--device", "cpu", "--device", "cpu"]),
        ("an argument bench does not take", ["bench", "--json", "extra"]),
        ("an argument info does not take", ["info", "extra"]),
        ("check without --device", ["check"]),
        ("check on the CPU", ["check", "--device", "cpu"]),
        ("a seed that is no number", ["check", "--device", "cuda", "--seed", "abc"]),
        ("--ptx and --compile", ["kernel-source", "--ptx", "--compile"]),
        ("unknown architecture", ["kernel-source", "--arch", "zz"]),
        ("cuda-bench without D", ["cuda-bench", "1", "2", "3"]),
        ("cuda-bench with a zero size", ["cuda-bench", "1", "2", "3", "0"]),
        ("cuda-bench of fp32", ["cuda-bench", "1", "2", "3", "4", "fp32"]),
        ("cuda-bench on the CPU", ["cuda-bench", "--device", "cpu", "1", "2", "3", "4"]),
        ("a newline in a value", ["check", "--device", "cuda:\nx"]),
    ]

    @Test("one line on stderr, nothing on stdout, exit status 1", arguments: mistakes)
    func refuses(label: String, arguments: [String]) throws {
        let result = try CommandOutput(arguments)
        #expect(result.status == 1, "\(label): status \(result.status)")
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty && lines[0].hasPrefix("flexattn: "),
                "\(label): stderr \(result.standardError.debugDescription)")
        #expect(result.standardOutput.isEmpty, "\(label): stdout \(result.standardOutput.debugDescription)")
    }

    @Test("bench --json times the shapes asked for")
    func benchJSON() throws {
        let result = try CommandOutput(["bench", "--json", "--sequence", "32", "--head-dim", "16"])
        #expect(result.status == 0, "stderr \(result.standardError)")
        #expect(result.standardOutput.hasPrefix("{\"device\":\"cpu\",\"kernels\":"))
        #expect(result.standardOutput.components(separatedBy: "\"sequence\":32,\"head_dim\":16,").count == 3)
    }

    @Test("info reports and exits 0 with or without a GPU")
    func info() throws {
        let result = try CommandOutput(["info"])
        #expect(result.status == 0, "stderr \(result.standardError)")
        #expect(result.standardOutput.contains("kernel cache: "))
    }
}
