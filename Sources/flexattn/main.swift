import ArgumentParser
import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// `flexattn COMMAND [OPTIONS]`: exits 0 on success, 1 with a one-line message on stderr otherwise. `flexattn`,
/// `flexattn help`, `--help` and `-h` print the usage of every command (`flexattn help COMMAND` and
/// `flexattn COMMAND --help` that command's options) and exit 0.
struct Flexattn: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexattn",
        abstract: "Flexible attention on the CPU and CUDA GPUs: run it on .npy files, benchmark it, check a GPU.",
        usage: [Run.usage, Decode.usage, Bench.usage, Info.usage, Check.usage, KernelSource.usage, CUDABench.usage]
            .joined(separator: "\n"),
        subcommands: [Run.self, Decode.self, Bench.self, Info.self, Check.self, KernelSource.self, CUDABench.self])
}

/// Exits with what `error` asks: help on stdout and 0, a status of its own (a failed check) with nothing more, or
/// one line on stderr and 1 (ArgumentParser's usage errors included, which would print their usage and exit 64).
func exit(reporting error: any Error) -> Never {
    if let status = error as? ExitCode { exit(status.rawValue) }
    if Flexattn.exitCode(for: error) == .success {
        print(Flexattn.fullMessage(for: error))
        exit(0)
    }
    // Messages can quote user text such as an expression holding a newline.
    let message = Flexattn.message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    writeToStandardError("flexattn: \(message)\n")
    exit(1)
}

// A FIFO output whose reader has gone is a write error (EPIPE) with a message, not a silent death by SIGPIPE.
signal(SIGPIPE, SIG_IGN)
do {
    var command = try Flexattn.parseAsRoot()
    try command.run()
} catch {
    exit(reporting: error)
}
