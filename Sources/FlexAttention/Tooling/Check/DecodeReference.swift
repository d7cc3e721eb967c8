/// Decoding computed the plain way, for the GPU checks: every score of every row materialised, the softmax and `P V`
/// in Float64, the sink joined to each row's denominator. Mods run through the CPU's tile evaluators (in Float32, as
/// the kernels run them), with the sequence's own length as `q_len` and `kv_len`.
struct DecodeReference {
    let problem: DecodeProblem
    /// Q `[B, Hq, Sq, D]` in logical order.
    let query: [Float]
    let cache: KVCache
    /// The cache's keys and values in logical order of their tensors.
    private let keys: [Float]
    private let values: [Float]

    init(problem: DecodeProblem, query: Tensor, cache: KVCache) {
        self.problem = problem
        self.query = query.floats()
        self.cache = cache
        keys = cache.keys.floats()
        values = cache.values.floats()
    }

    /// Where token `t`'s key (or value, `width` wide) of (b, hkv) starts in `keys` (or `values`).
    private func rowStart(width: Int, b: Int, hkv: Int, t: Int) -> Int {
        let (outer, row) = cache.index.location(sequence: b, position: t)
        guard let table = cache.pageTable else {  // [B, Hkv, capacity, D]
            return ((outer * problem.kvHeads + hkv) * problem.capacity + row) * width
        }
        return ((outer * table.pageSize + row) * problem.kvHeads + hkv) * width  // [pages, pageSize, Hkv, D]
    }

    /// O `[B, Hq, Sq, Dv]` and the natural-log LSE `[B, Hq, Sq]`, row-major.
    func attend() throws -> (output: [Float], logSumExp: [Float]) {
        let p = problem
        var output = [Float](repeating: 0, count: p.batch * p.queryHeads * p.queryLength * p.valueDim)
        var logSumExp = [Float](repeating: -.infinity, count: p.batch * p.queryHeads * p.queryLength)
        for b in 0..<p.batch {
            let length = p.lengths[b]
            let scoreMod = try p.scoreMod.map {
                try ScoreModTileEvaluator($0, queryLength: length, keyLength: length, includesGradients: false)
            }
            let mask = try p.mask.map { try MaskTileEvaluator($0, queryLength: length, keyLength: length) }
            for h in 0..<p.queryHeads {
                let hkv = h / p.groupSize
                // Key-major scores [length][Sq], as the CPU's tiles hold them.
                var tile = [Float](repeating: 0, count: length * p.queryLength)
                for t in 0..<length {
                    let key = rowStart(width: p.headDim, b: b, hkv: hkv, t: t)
                    for i in 0..<p.queryLength {
                        let q = ((b * p.queryHeads + h) * p.queryLength + i) * p.headDim
                        var dot = 0.0
                        for d in 0..<p.headDim { dot += Double(query[q + d]) * Double(keys[key + d]) }
                        tile[t * p.queryLength + i] = Float(dot * Double(p.scale))
                    }
                }
                tile.withUnsafeMutableBufferPointer { pointer in
                    guard let base = pointer.baseAddress else { return }
                    let scores = ScoreTile(
                        values: base, stride: p.queryLength, batch: b, head: h,
                        queries: length - p.queryLength..<length, keys: 0..<length,
                        sequenceLengths: SequenceLengths(query: length, key: length))
                    scoreMod?.modify(scores, derivative: nil, kernels: BaselineTileKernels.self)
                    mask?.mask(scores)
                }
                for i in 0..<p.queryLength {
                    let row = (b * p.queryHeads + h) * p.queryLength + i
                    let sink = Double(p.sinks?[h] ?? -.infinity)
                    let scores = (0..<length).map { Double(tile[$0 * p.queryLength + i]) }
                    let top = max(scores.max() ?? -.infinity, sink)
                    guard top > -.infinity else { continue }
                    let weights = scores.map { expDouble($0 - top) }
                    let total = weights.reduce(0, +) + expDouble(sink - top)
                    logSumExp[row] = Float(top + logDouble(total))
                    var sums = [Double](repeating: 0, count: p.valueDim)
                    for t in 0..<length where weights[t] != 0 {
                        let value = rowStart(width: p.valueDim, b: b, hkv: hkv, t: t)
                        for c in 0..<p.valueDim { sums[c] += weights[t] * Double(values[value + c]) }
                    }
                    for c in 0..<p.valueDim { output[row * p.valueDim + c] = Float(sums[c] / total) }
                }
            }
        }
        return (output, logSumExp)
    }
}

#if canImport(Glibc)
import Glibc
private func expDouble(_ x: Double) -> Double { Glibc.exp(x) }
private func logDouble(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
import Darwin
private func expDouble(_ x: Double) -> Double { Darwin.exp(x) }
private func logDouble(_ x: Double) -> Double { Darwin.log(x) }
#endif
