import Dispatch
import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// `flexattn bench --decode` on the CPU: one decoding step (Sq = 1, Hq = 32, Hkv = 8, D = 128) against caches of
/// several batch sizes and contexts, contiguous and paged, plus a sliding-window and a soft-capped row, as GB/s of
/// keys and values read, against this machine's read bandwidth (``ReadBandwidth``) measured in alternation with each
/// row: a shared VM's bandwidth drifts by a factor of two within a minute, so each row's ratio is the median of
/// per-round ratios, each round a streaming read then a decoding step. Rows whose cache would pass
/// ``maximumCacheBytes`` are left out and listed.
struct CPUDecodeBenchmark {
    let json: Bool

    static let maximumCacheBytes = 2 << 30
    private static let (queryHeads, kvHeads, headDim) = (32, 8, 128)

    struct Case {
        var batch: Int
        var context: Int
        var pageSize: Int?
        var mod = "none"
        var dtype = DType.float32

        var layout: String { pageSize.map { "paged \($0)" } ?? "contiguous" }
        /// Cached tokens a query reads: the window's, or the whole context.
        var tokensRead: Int { mod == "window 4096" ? min(context, 4096) : context }
        var bytesRead: Int {
            batch * CPUDecodeBenchmark.kvHeads * tokensRead * 2 * CPUDecodeBenchmark.headDim * dtype.byteSize
        }
        var cacheBytes: Int { batch * CPUDecodeBenchmark.kvHeads * context * 2 * CPUDecodeBenchmark.headDim * dtype.byteSize }
    }

    static let cases: [Case] = {
        var cases: [Case] = []
        for batch in [1, 8, 64] {
            for context in [1024, 8192, 32768, 131_072] { cases.append(Case(batch: batch, context: context)) }
        }
        cases += [
            Case(batch: 8, context: 8192, pageSize: 16), Case(batch: 8, context: 8192, pageSize: 64),
            Case(batch: 1, context: 131_072, pageSize: 16),
            Case(batch: 8, context: 32768, mod: "window 4096"), Case(batch: 8, context: 8192, mod: "soft-cap 30"),
            Case(batch: 8, context: 8192, dtype: .bfloat16),
        ]
        return cases
    }()

    /// One row's medians: seconds of a decoding step, the read bandwidth beside it, and their per-round ratio.
    struct Measurement {
        let seconds: Double
        let bandwidth: Double
        let fractionOfBandwidth: Double
    }

    private static let rounds = 7

    func execute() throws {
        let bandwidth = try ReadBandwidth()
        var results: [(Case, Measurement)] = []
        var skipped: [Case] = []
        let progress = isatty(STDERR_FILENO) != 0
        for item in Self.cases {
            guard item.cacheBytes <= Self.maximumCacheBytes else {
                skipped.append(item)
                continue
            }
            if progress { writeToStandardError("\rbenchmarking B=\(item.batch) context \(item.context) \(item.layout)...   ") }
            results.append((item, try measure(item, bandwidth: bandwidth)))
        }
        if progress { writeToStandardError("\r\u{1B}[K") }
        print(json ? renderJSON(results) : renderTable(results, skipped: skipped))
    }

    private func measure(_ item: Case, bandwidth: ReadBandwidth) throws -> Measurement {
        let (hkv, d) = (Self.kvHeads, Self.headDim)
        let cache: KVCache
        if let pageSize = item.pageSize {
            let pagesPerSequence = (item.context + pageSize - 1) / pageSize
            let pages = item.batch * pagesPerSequence
            // Pages handed out in a scrambled order, as a long-running server's pool ends up.
            let order = (0..<pages).map { ($0 * 7919) % pages }
            let table = try PageTable(
                entries: order.map(Int32.init), batch: item.batch, maxPagesPerSequence: pagesPerSequence,
                pageCount: pages, pageSize: pageSize)
            cache = try KVCache(
                keyPages: Tensor.random(shape: [pages, pageSize, hkv, d], dtype: item.dtype, seed: 1),
                valuePages: Tensor.random(shape: [pages, pageSize, hkv, d], dtype: item.dtype, seed: 2),
                pageTable: table, lengths: [Int](repeating: item.context, count: item.batch))
        } else {
            cache = try KVCache(
                keys: Tensor.random(shape: [item.batch, hkv, item.context, d], dtype: item.dtype, seed: 1),
                values: Tensor.random(shape: [item.batch, hkv, item.context, d], dtype: item.dtype, seed: 2),
                lengths: [Int](repeating: item.context, count: item.batch))
        }
        let query = try Tensor.random(shape: [item.batch, Self.queryHeads, 1, d], dtype: item.dtype, seed: 3)
        let options: AttentionOptions = switch item.mod {
        case "window 4096": AttentionOptions(mask: .slidingWindow(4096))
        case "soft-cap 30": AttentionOptions(scoreMod: .softCap(30))
        default: AttentionOptions()
        }
        let attention = Attention()
        _ = try attention.decode(query: query, cache: cache, options: options)  // warm-up
        var rounds: [(seconds: Double, bandwidth: Double)] = []
        for _ in 0..<Self.rounds {
            let rate = bandwidth.measure()
            let elapsed = try ContinuousClock().measure {
                _ = try attention.decode(query: query, cache: cache, options: options)
            }
            rounds.append((Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18, rate))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return Measurement(
            seconds: median(rounds.map(\.seconds)), bandwidth: median(rounds.map(\.bandwidth)),
            fractionOfBandwidth: median(rounds.map { Double(item.bytesRead) / $0.seconds / $0.bandwidth }))
    }

    private func renderTable(_ results: [(Case, Measurement)], skipped: [Case]) -> String {
        var lines = [
            "flexattn bench --decode: cpu, \(InstructionSet.current) kernels, Sq=1 Hq=32 Hkv=8 D=128",
            "read bandwidth: a streaming sum on all cores, alternated with each row's decoding (medians of \(Self.rounds))",
            "    B  context  layout       mod          dtype       µs     GB/s  read GB/s  % of read bandwidth",
        ]
        for (item, m) in results {
            lines.append(
                pad(item.batch, 5) + pad(item.context, 9) + "  " + item.layout.padding(12) + " "
                    + item.mod.padding(12) + " " + "\(item.dtype)".padding(8) + pad(fixed(m.seconds * 1e6, 0), 9)
                    + pad(fixed(Double(item.bytesRead) / m.seconds / 1e9, 1), 9) + pad(fixed(m.bandwidth / 1e9, 1), 11)
                    + pad(fixed(100 * m.fractionOfBandwidth, 1), 21))
        }
        if !skipped.isEmpty {
            lines.append("left out (cache over \(Self.maximumCacheBytes >> 30) GiB): "
                + skipped.map { "B=\($0.batch) \($0.context)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    private func renderJSON(_ results: [(Case, Measurement)]) -> String {
        let items = results.map { item, m in
            "{\"batch\":\(item.batch),\"context\":\(item.context),\"layout\":\"\(item.layout)\",\"mod\":\"\(item.mod)\","
                + "\"dtype\":\"\(item.dtype)\",\"microseconds\":\(m.seconds * 1e6),"
                + "\"gb_per_s\":\(Double(item.bytesRead) / m.seconds / 1e9),\"read_gb_per_s\":\(m.bandwidth / 1e9),"
                + "\"fraction_of_read_bandwidth\":\(m.fractionOfBandwidth)}"
        }
        return "{\"device\":\"cpu\",\"results\":[\(items.joined(separator: ","))]}"
    }
}

/// This machine's memory read bandwidth: a streaming sum of a 512 MiB buffer, one slice per core.
final class ReadBandwidth {
    private let floats = 1 << 27
    private let buffer: UnsafeMutablePointer<Float>

    init() throws {
        buffer = .allocate(capacity: floats)
        buffer.initialize(repeating: 1, count: floats)
    }

    deinit { buffer.deallocate() }

    /// Bytes per second of one pass.
    func measure() -> Double {
        let threads = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let slice = floats / threads / 64 * 64
        let source = UnsafeSendable(buffer)
        let start = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var sums = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
            var p = UnsafeRawPointer(source.pointer + t * slice)
            for _ in 0..<slice / 64 {
                sums.0 += p.loadUnaligned(as: SIMD16<Float>.self)
                sums.1 += (p + 64).loadUnaligned(as: SIMD16<Float>.self)
                sums.2 += (p + 128).loadUnaligned(as: SIMD16<Float>.self)
                sums.3 += (p + 192).loadUnaligned(as: SIMD16<Float>.self)
                p += 256
            }
            // Kept observable so the loop is not removed.
            if (sums.0 + sums.1 + sums.2 + sums.3).sum() == -1 { writeToStandardError("") }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return Double(slice * threads * 4) / seconds
    }
}

/// A pointer shared by the threads of a measurement, each reading its own slice.
private struct UnsafeSendable: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}
