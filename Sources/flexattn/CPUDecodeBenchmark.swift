import Dispatch
import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// `flexattn bench --decode` on the CPU: one decoding step (Sq = 1, Hq = 32, Hkv = 8, D = 128) against caches of
/// several batch sizes and contexts, contiguous and paged, plus a sliding-window and a soft-capped row, as GB/s of
/// keys and values read, beside this machine's read bandwidth measured in the same run (``ReadBandwidth``).
/// Rows whose cache would pass ``maximumCacheBytes`` are left out and listed.
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

    func execute() throws {
        let bandwidth = ReadBandwidth.measure()
        var results: [(Case, Double)] = []
        var skipped: [Case] = []
        let progress = isatty(STDERR_FILENO) != 0
        for item in Self.cases {
            guard item.cacheBytes <= Self.maximumCacheBytes else {
                skipped.append(item)
                continue
            }
            if progress { writeToStandardError("\rbenchmarking B=\(item.batch) context \(item.context) \(item.layout)...   ") }
            results.append((item, try measure(item)))
        }
        if progress { writeToStandardError("\r\u{1B}[K") }
        print(json ? renderJSON(results, bandwidth: bandwidth) : renderTable(results, skipped: skipped, bandwidth: bandwidth))
    }

    private func measure(_ item: Case) throws -> Double {
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
        return try medianSeconds { _ = try attention.decode(query: query, cache: cache, options: options) }
    }

    private func renderTable(_ results: [(Case, Double)], skipped: [Case], bandwidth: Double) -> String {
        var lines = [
            "flexattn bench --decode: cpu, \(InstructionSet.current) kernels, Sq=1 Hq=32 Hkv=8 D=128",
            "read bandwidth measured now (streaming sum, all cores): \(fixed(bandwidth / 1e9, 1)) GB/s",
            "    B  context  layout       mod          dtype       µs     GB/s  % of read bandwidth",
        ]
        for (item, seconds) in results {
            let rate = Double(item.bytesRead) / seconds
            lines.append(
                pad(item.batch, 5) + pad(item.context, 9) + "  " + item.layout.padding(12) + " "
                    + item.mod.padding(12) + " " + "\(item.dtype)".padding(8) + pad(fixed(seconds * 1e6, 0), 9)
                    + pad(fixed(rate / 1e9, 1), 9) + pad(fixed(100 * rate / bandwidth, 1), 21))
        }
        if !skipped.isEmpty {
            lines.append("left out (cache over \(Self.maximumCacheBytes >> 30) GiB): "
                + skipped.map { "B=\($0.batch) \($0.context)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    private func renderJSON(_ results: [(Case, Double)], bandwidth: Double) -> String {
        let items = results.map { item, seconds in
            "{\"batch\":\(item.batch),\"context\":\(item.context),\"layout\":\"\(item.layout)\",\"mod\":\"\(item.mod)\","
                + "\"dtype\":\"\(item.dtype)\",\"microseconds\":\(seconds * 1e6),"
                + "\"gb_per_s\":\(Double(item.bytesRead) / seconds / 1e9)}"
        }
        return "{\"device\":\"cpu\",\"read_bandwidth_gb_per_s\":\(bandwidth / 1e9),\"results\":[\(items.joined(separator: ","))]}"
    }
}

/// This machine's memory read bandwidth: the best of several streaming sums of a 1 GiB buffer, one slice per core.
enum ReadBandwidth {
    static func measure() -> Double {
        let floats = 1 << 28
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: floats)
        let threads = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let slice = floats / threads / 64 * 64
        let source = UnsafeSendable(buffer)
        var best = 0.0
        for _ in 0..<5 {
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
            best = max(best, Double(slice * threads * 4) / seconds)
        }
        return best
    }
}

/// A pointer shared by the threads of a measurement, each reading its own slice.
private struct UnsafeSendable: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}
