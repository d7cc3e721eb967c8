import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// `flexattn bench`: times the CPU forward and backward passes on the standard shapes (B=1, H=8,
/// S ∈ {1024, 4096}, D ∈ {64, 128}, causal or not, Float32) and prints a table; `--json` prints one JSON object.
/// `--sequence N` and `--head-dim N` (repeatable) choose other shapes.
struct BenchCommand {
    let json: Bool
    let device: Device
    let sequences: [Int]
    let headDims: [Int]

    init(arguments: [String]) throws {
        let options = try ParsedOptions(
            arguments, valued: ["--device", "--sequence", "--head-dim"], flags: ["--json"])
        json = options.has("--json")
        device = try parseDevice(try options.value("--device") ?? "cpu")
        sequences = try positiveIntegers(options.all("--sequence"), option: "--sequence") ?? [1024, 4096]
        headDims = try positiveIntegers(options.all("--head-dim"), option: "--head-dim") ?? [64, 128]
    }

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
        let attention = Attention(device: device)
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

    /// Median wall time of `body` over at least 3 runs and 1 second (after one warm-up run), at most 25 runs.
    private func medianSeconds(_ body: () throws -> Void) throws -> Double {
        try body()
        let clock = ContinuousClock()
        var samples: [Double] = []
        let start = clock.now
        while samples.count < 3 || (clock.now - start < .seconds(1) && samples.count < 25) {
            let elapsed = try clock.measure(body)
            samples.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        return samples.sorted()[samples.count / 2]
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
}

/// The values of a repeatable integer option, `nil` when it was not given.
func positiveIntegers(_ texts: [String], option: String) throws -> [Int]? {
    guard !texts.isEmpty else { return nil }
    return try texts.map { text in
        guard let value = Int(text), value > 0 else {
            throw CommandLineError("\(option) takes a positive integer, got '\(text)'")
        }
        return value
    }
}

/// Uniform values in [−1, 1) from a xorshift generator: the system generator would take longer than the timing.
private func randomTensor(_ shape: [Int]) throws -> Tensor {
    var state = UInt64.random(in: 1...UInt64.max)
    let values = (0..<shape.reduce(1, *)).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    return try Tensor(values, shape: shape)
}

private func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let text = value.description
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

private func fixed(_ value: Double, _ decimals: Int) -> String {
    let factor = Double([1, 10, 100, 1000][decimals])
    let rounded = (value * factor).rounded() / factor
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}

/// Peak resident memory of this process, from /proc (Linux).
enum PeakMemory {
    /// Resets the kernel's peak counter to the current resident size and returns that size in bytes.
    static func resetAndRead() -> Int {
        if let file = fopen("/proc/self/clear_refs", "w") {
            fputs("5", file)
            fclose(file)
        }
        guard let file = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("VmHWM:") {
                let digits = text.filter(\.isNumber)
                return (Int(digits) ?? 0) * 1024
            }
        }
        return 0
    }
}

/// `cpu`, or `cuda` / `cuda:N`.
func parseDevice(_ text: String) throws -> Device {
    if text == "cpu" { return .cpu }
    if text == "cuda" { return .cuda(0) }
    if text.hasPrefix("cuda:"), let ordinal = Int(text.dropFirst(5)), ordinal >= 0 { return .cuda(ordinal) }
    throw CommandLineError("unknown device '\(text)' (expected cpu, cuda or cuda:N)")
}
