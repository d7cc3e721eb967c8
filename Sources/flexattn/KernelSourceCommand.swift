import ArgumentParser
import FlexAttention

extension Flexattn {
    struct KernelSource: ParsableCommand {
        static let usage = "flexattn kernel-source [NAME] [--arch sm_90a|sm_80] [--ptx|--compile]"
        static let configuration = CommandConfiguration(
            commandName: "kernel-source",
            abstract: "Lists the generated kernels, prints one's CUDA C++ or PTX, or times its compilation.",
            usage: usage)

        @Argument(help: ArgumentHelp("The kernel (none: list them).", valueName: "NAME"))
        var name: String?
        @Option(parsing: .unconditional,
                help: ArgumentHelp("The GPU architecture to compile for (default sm_90a).", valueName: "sm_90a|sm_80"))
        var arch: String?
        @Flag(help: "What to print instead of the CUDA C++ source.")
        var output: KernelSourceOutput?

        func run() throws {
            try runKernelSource(
                name: name, architecture: try arch.map(GPUArchitecture.init(parsing:)) ?? .sm90a, output: output)
        }
    }
}

/// What `flexattn kernel-source NAME` prints instead of the source: the PTX, or compile latencies.
enum KernelSourceOutput: String, EnumerableFlag {
    case ptx, compile

    static func help(for value: Self) -> ArgumentHelp? {
        switch value {
        case .ptx: "Print the kernel's PTX."
        case .compile: "Compile the kernel and report the first-call and cached-call latency."
        }
    }
}

/// `flexattn kernel-source [NAME] [--arch sm_90a] [--ptx | --compile]`: lists the generated kernels, prints one's
/// CUDA C++ (or its PTX), or compiles it and reports first-call and cached-call latency.
func runKernelSource(name: String?, architecture: GPUArchitecture, output: KernelSourceOutput?) throws {
    let kernels = try KernelCatalog.kernels()
    guard let name else {
        kernels.forEach { print($0.name) }
        return
    }
    guard let kernel = kernels.first(where: { $0.name == name }) else {
        throw CUDAError.invalidArgument("no kernel named \(name); 'flexattn kernel-source' lists them")
    }
    switch output {
    case .ptx?:
        let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: architecture)
        let virtual = request.compilerOptions.map { $0.replacing("=sm_", with: "=compute_") }
        print(try NVRTC().ptx(source: kernel.source, name: kernel.name, options: virtual))
    case .compile?:
        try reportCompileLatency(kernel, architecture: architecture)
    case nil:
        print(kernel.source, terminator: "")
    }
}

/// Times NVRTC's load, a compile into an empty cache, a memory hit, and a disk hit from a second cache instance
/// (as a new process would see it).
private func reportCompileLatency(_ kernel: any GeneratedKernel, architecture: GPUArchitecture) throws {
    let clock = ContinuousClock()
    var nvrtc: NVRTC?
    let load = try clock.measure { nvrtc = try NVRTC() }
    guard let nvrtc else { return }
    let root = "/tmp/flexattention-latency-\(UInt64.random(in: 0...UInt64.max))"
    let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: architecture)
    let cache = KernelCache(compiler: nvrtc, root: root)
    var lines = ["NVRTC load: \(format(load))"]
    for (label, instance) in [("first call", cache), ("second call", cache), ("new cache, same folder", KernelCache(compiler: nvrtc, root: root))] {
        var origin = KernelOrigin.compiled
        var size = 0
        let elapsed = try clock.measure {
            let result = try instance.cubin(for: request)
            (origin, size) = (result.origin, result.cubin.count)
        }
        lines.append("\(label): \(format(elapsed)) (\(origin), \(size)-byte cubin)")
    }
    print("\(kernel.name) for \(architecture), cache folder \(root)")
    lines.forEach { print("  \($0)") }
}

private func format(_ duration: Duration) -> String {
    let microseconds = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    return microseconds >= 10_000 ? "\(microseconds / 1000) ms" : "\(microseconds) µs"
}
