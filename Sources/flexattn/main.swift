import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// `flexattn COMMAND [OPTIONS]`: exits 0 on success, 1 with a one-line message on stderr otherwise.
let usage = """
    usage: flexattn run --q Q.npy --k K.npy --v V.npy --out O.npy [--lse LSE.npy] [--scale X] [--device cpu]
                        [--mask EXPR] [--score EXPR] [--table NAME=FILE.npy]...
                        [--grad-out DO.npy --dq DQ.npy --dk DK.npy --dv DV.npy] [--dtable NAME=FILE.npy]...
           flexattn bench [--json] [--device cpu] [--sequence N]... [--head-dim N]...
           flexattn info
           flexattn check --device cuda[:N] [--seed S]
           flexattn kernel-source [NAME] [--arch sm_90a|sm_80] [--ptx|--compile]
    """

// A FIFO output whose reader has gone is a write error (EPIPE) with a message, not a silent death by SIGPIPE.
signal(SIGPIPE, SIG_IGN)
let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "run": try RunCommand(arguments: Array(arguments.dropFirst())).execute()
    case "bench": try BenchCommand(arguments: Array(arguments.dropFirst())).execute()
    case "info": exit(try runInfo(arguments: Array(arguments.dropFirst())))
    case "check": exit(try runCheck(arguments: Array(arguments.dropFirst())))
    case "kernel-source": exit(try runKernelSource(arguments: Array(arguments.dropFirst())))
    case "cuda-bench": exit(try runCUDABench(arguments: Array(arguments.dropFirst())))
    case "help", "--help", "-h": print(usage)
    default:
        throw CommandLineError("unknown command '\(arguments.first ?? "")'; try 'flexattn help'")
    }
} catch {
    writeToStandardError("flexattn: \(error)\n")
    exit(1)
}
