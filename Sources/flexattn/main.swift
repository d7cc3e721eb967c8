import FlexAttention
import Glibc

// Temporary dispatch on branch `cuda` for testing; the lead's main.swift replaces it.
let arguments = Array(CommandLine.arguments.dropFirst())
do {
    let rest = Array(arguments.dropFirst())
    switch arguments.first {
    case "info": exit(try runInfo(arguments: rest))
    case "check": exit(try runCheck(arguments: rest))
    case "kernel-source": exit(try runKernelSource(arguments: rest))
    default: print("usage: flexattn info | check --device cuda | kernel-source [NAME]")
    }
} catch {
    print("flexattn: \(error)")
    exit(1)
}
