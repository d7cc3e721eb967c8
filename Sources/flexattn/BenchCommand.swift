import ArgumentParser
import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

extension Flexattn {
    /// `flexattn bench`: the options as given (a single-valued one given twice is refused, as by ``Run``), checked
    /// into a ``BenchCommand``.
    struct Bench: ParsableCommand {
        static let usage = """
            flexattn bench [--json] [--device cpu|cuda|cuda:N] [--sequence N]... [--head-dim N]... [--mods] [--model]
                           [--decode]
            flexattn bench --device cuda --context-parallel N... [--sequence N]... [--mask causal|window:W]
                           [--head-groups G] [--longest]
            """
        static let configuration = CommandConfiguration(
            abstract: "Times the forward and backward passes (B=1, H=8, Float32) and prints a table.", usage: usage)

        @Flag(help: "Print one JSON object instead of the table.")
        var json = false
        @Option(name: .customLong("device"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Where to time (default cpu).", valueName: "cpu|cuda|cuda:N"))
        var device: [String] = []
        @Option(name: .customLong("sequence"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A sequence length to time (repeatable; default 1024 and 4096).", valueName: "N"))
        var sequences: [String] = []
        @Option(name: .customLong("head-dim"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A head dimension to time (repeatable; default 64 and 128).", valueName: "N"))
        var headDims: [String] = []
        @Flag(help: "Time masks, score mods and block masks instead (CPU).")
        var mods = false
        @Flag(help: ArgumentHelp(
            "With --device cuda: time a model step captured as a CUDA graph and the host overhead per call, at the "
                + "first --sequence and --head-dim (default 4096 and 128)."))
        var model = false
        @Flag(help: ArgumentHelp(
            "Time one decoding step against KV caches instead (Sq=1, Hq=32, Hkv=8, D=128), as GB/s of keys and values "
                + "read: on the CPU, Float32 against the read bandwidth measured beside it; with --device cuda, bf16 "
                + "at B ∈ {1, 8, 64} over contexts 1k to 128k (or the --sequence values), contiguous and paged."))
        var decode = false
        @Option(name: .customLong("context-parallel"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp(
                    "With --device cuda: time ring attention over this many GPUs against one GPU (repeatable; B=1, "
                        + "Hq=32, Hkv=8, D=128, bf16, S ∈ {128k, 256k, 512k} or the --sequence values).",
                    valueName: "N"))
        var contextParallel: [String] = []
        @Option(name: .customLong("mask"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("With --context-parallel: the mask (default causal).", valueName: "causal|window:W"))
        var mask: [String] = []
        @Option(name: .customLong("head-groups"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("With --context-parallel: run the ring once per group of heads (default 1).",
                                   valueName: "G"))
        var headGroups: [String] = []
        @Flag(help: "With --context-parallel: find the longest causal sequence that runs on one GPU and on N.")
        var longest = false

        func run() throws {
            let sequences = try positiveIntegers(sequences, option: "--sequence")
            let headDims = try positiveIntegers(headDims, option: "--head-dim")
            if let worlds = try positiveIntegers(contextParallel, option: "--context-parallel") {
                guard case .cuda = try parseDevice(try single(device, "--device") ?? "cpu"), !json, !mods, !model,
                      !decode, headDims == nil else {
                    throw CommandLineError(
                        "--context-parallel goes with --device cuda and none of --json, --mods, --model, --decode,"
                            + " --head-dim")
                }
                return try ContextParallelBenchmark(
                    worldSizes: worlds, sequences: sequences ?? [131_072, 262_144, 524_288],
                    mask: try parseMask(try single(mask, "--mask") ?? "causal"),
                    headGroups: try positiveIntegers(headGroups, option: "--head-groups")?.first ?? 1, longest: longest
                ).execute()
            }
            guard mask.isEmpty, headGroups.isEmpty, !longest else {
                throw CommandLineError("--mask, --head-groups and --longest go with --context-parallel")
            }
            try BenchCommand(
                json: json, device: try parseDevice(try single(device, "--device") ?? "cpu"),
                sequences: sequences ?? [1024, 4096], headDims: headDims ?? [64, 128], mods: mods, model: model,
                decode: decode, explicitSequences: sequences, explicitHeadDim: headDims?.first
            ).execute()
        }
    }
}

/// `--mask`'s value: `causal` or `window:W`.
private func parseMask(_ text: String) throws -> ContextParallelBenchmark.MaskChoice {
    if text == "causal" { return .causal }
    if text.hasPrefix("window:"), let size = Int(text.dropFirst("window:".count)), size > 0 { return .window(size) }
    throw CommandLineError("--mask takes causal or window:W (W a positive integer), not \(text)")
}

/// `flexattn bench`: times the CPU forward and backward passes on the standard shapes (B=1, H=8,
/// S ∈ {1024, 4096}, D ∈ {64, 128}, causal or not, Float32) and prints a table; `--json` prints one JSON object.
/// `--sequence N` and `--head-dim N` (repeatable) choose other shapes; `--mods` times masks, score mods and block
/// masks instead (see ``ModsBenchmark``). With `--device cuda` it times the GPU instead (see ``GPUBenchmark``), and
/// with `--device cuda --model` the engine: a model step captured as a CUDA graph, and the host overhead per call.
/// `--decode` times one decoding step against a KV cache (``GPUDecodeBenchmark`` on the GPU, ``CPUDecodeBenchmark``
/// on the CPU).
struct BenchCommand {
    let json: Bool
    let device: Device
    let sequences: [Int]
    let headDims: [Int]
    let mods: Bool
    let model: Bool
    let decode: Bool
    /// The `--sequence` values and the first `--head-dim` given: `--model`'s one shape (the first of each),
    /// `--decode`'s contexts.
    let explicitSequences: [Int]?
    let explicitHeadDim: Int?

    struct Row {
        let sequence: Int, headDim: Int, causal: Bool
        let forwardSeconds: Double, backwardSeconds: Double, forwardExtraBytes: Int

        /// 4·B·H·S²·D, halved when causal.
        var forwardFlop: Double { 4 * 8 * Double(sequence * sequence * headDim) / (causal ? 2 : 1) }
        var forwardGFlops: Double { forwardFlop / forwardSeconds / 1e9 }
        /// The backward pass counted as 2.5 forward passes.
        var backwardGFlops: Double { 2.5 * forwardFlop / backwardSeconds / 1e9 }
    }

    func execute() throws {
        if decode {
            guard case let .cuda(ordinal) = device else { return try CPUDecodeBenchmark(json: json).execute() }
            var benchmark = GPUDecodeBenchmark(ordinal: ordinal)
            if let explicitSequences { benchmark.contexts = explicitSequences }
            return try benchmark.execute()
        }
        if case let .cuda(ordinal) = device {
            let benchmark = GPUBenchmark(ordinal: ordinal)
            if model {
                return try benchmark.executeModel(length: explicitSequences?.first ?? 4096, headDim: explicitHeadDim ?? 128)
            }
            print(try benchmark.execute())
            return
        }
        let attention = Attention(device: device)
        if mods { return try executeMods(attention) }
        var rows: [Row] = []
        let progress = isatty(STDERR_FILENO) != 0
        for sequence in sequences {
            for headDim in headDims {
            for causal in [false, true] {
                if progress {
                    writeToStandardError("\rbenchmarking S=\(sequence) D=\(headDim)\(causal ? " causal" : "")...   ")
                }
                rows.append(try measure(attention, sequence: sequence, headDim: headDim, causal: causal))
            }
            }
        }
        if progress { writeToStandardError("\r\u{1B}[K") }
        print(json ? renderJSON(rows) : renderTable(rows))
    }

    private func measure(_ attention: Attention, sequence: Int, headDim: Int, causal: Bool) throws -> Row {
        let shape = [1, 8, sequence, headDim]
        let q = try randomTensor(shape), k = try randomTensor(shape), v = try randomTensor(shape)
        let dO = try randomTensor(shape)
        let options = AttentionOptions(isCausal: causal)
        var forward = try attention.forward(query: q, key: k, value: v, options: options)
        let baseline = PeakMemory.resetAndRead()
        forward = try attention.forward(query: q, key: k, value: v, options: options)
        let extra = max(0, PeakMemory.resetAndRead() - baseline)
        let forwardSeconds = try medianSeconds {
            forward = try attention.forward(query: q, key: k, value: v, options: options)
        }
        let backwardSeconds = try medianSeconds {
            _ = try attention.backward(
                query: q, key: k, value: v, forward: forward, outputGradient: dO, options: options)
        }
        return Row(sequence: sequence, headDim: headDim, causal: causal, forwardSeconds: forwardSeconds,
                   backwardSeconds: backwardSeconds, forwardExtraBytes: extra)
    }

    private func renderTable(_ rows: [Row]) -> String {
        var lines = [
            "flexattn bench: \(device), \(InstructionSet.current) kernels, B=1 H=8 Float32",
            "   S    D  causal   fwd ms  fwd GFLOP/s   bwd ms  bwd GFLOP/s  fwd extra MiB",
        ]
        for row in rows {
            lines.append(
                pad(row.sequence, 4) + pad(row.headDim, 5) + pad(row.causal ? "yes" : "no", 8)
                    + pad(fixed(row.forwardSeconds * 1e3, 1), 9) + pad(fixed(row.forwardGFlops, 1), 13)
                    + pad(fixed(row.backwardSeconds * 1e3, 1), 9) + pad(fixed(row.backwardGFlops, 1), 13)
                    + pad(fixed(Double(row.forwardExtraBytes) / 1_048_576, 1), 15))
        }
        return lines.joined(separator: "\n")
    }

    private func renderJSON(_ rows: [Row]) -> String {
        let items = rows.map { row in
            "{\"batch\":1,\"heads\":8,\"sequence\":\(row.sequence),\"head_dim\":\(row.headDim),"
                + "\"causal\":\(row.causal),\"forward_ms\":\(row.forwardSeconds * 1e3),"
                + "\"forward_gflops\":\(row.forwardGFlops),\"backward_ms\":\(row.backwardSeconds * 1e3),"
                + "\"backward_gflops\":\(row.backwardGFlops),\"forward_extra_bytes\":\(row.forwardExtraBytes)}"
        }
        return "{\"device\":\"\(device)\",\"kernels\":\"\(InstructionSet.current)\",\"dtype\":\"float32\","
            + "\"results\":[\(items.joined(separator: ","))]}"
    }

    private func executeMods(_ attention: Attention) throws {
        let benchmark = ModsBenchmark(attention: attention)
        let progress = isatty(STDERR_FILENO) != 0
        let report: (String) -> Void = { if progress { writeToStandardError("\rbenchmarking \($0)...          ") } }
        let comparisons = try benchmark.comparisons(progress: report)
        report("sliding window")
        let window = try benchmark.slidingWindow()
        report("block masks")
        let blockMasks = try benchmark.blockMasks()
        if progress { writeToStandardError("\r\u{1B}[K") }
        print(benchmark.render(comparisons, window: window, blockMasks: blockMasks))
    }
}
