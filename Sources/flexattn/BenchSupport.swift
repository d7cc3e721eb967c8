import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// Median wall time of `body` over at least 3 runs and 1 second (after one warm-up run), at most 25 runs.
func medianSeconds(_ body: () throws -> Void) throws -> Double {
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
func randomTensor(_ shape: [Int]) throws -> Tensor {
    var state = UInt64.random(in: 1...UInt64.max)
    let values = (0..<shape.reduce(1, *)).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    return try Tensor(values, shape: shape)
}

func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let text = value.description
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

func fixed(_ value: Double, _ decimals: Int) -> String {
    let factor = (0..<max(0, decimals)).reduce(1.0) { product, _ in product * 10 }
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

/// `cuda` / `cuda:N` (of a command that runs only on a GPU): the device ordinal.
func parseCUDAOrdinal(_ text: String) throws -> Int {
    guard case .cuda(let ordinal) = try? parseDevice(text) else {
        throw CommandLineError("--device takes cuda or cuda:N, got '\(text)'")
    }
    return ordinal
}
