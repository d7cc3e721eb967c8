#if canImport(Glibc)
import Glibc
#endif

/// Attention computed the plain way, for checking the GPU where the CPU forward does not yet apply mods: every
/// score of a (batch, head) in one key-major tile, the score mod and mask from the CPU tile evaluators, softmax
/// in Double. For small problems only: it holds `Sq × Skv` scores.
struct ForwardReference {
    var output: [Float]
    var logSumExp: [Float]

    init(query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions) throws {
        let shape = try AttentionShape(query: query, key: key, value: value)
        let scale = try shape.resolvedScale(options.scale)
        let (sq, skv, d, dv) = (shape.queryLength, shape.keyLength, shape.headDim, shape.valueDim)
        let (q, k, v) = (query.floats(), key.floats(), value.floats())
        let mask = options.isCausal ? options.mask.map { .causal && $0 } ?? .causal : options.mask
        let masking = try mask.map { try MaskTileEvaluator($0, queryLength: sq, keyLength: skv) }
        let scoreMod = try options.scoreMod.map { try ScoreModTileEvaluator($0, queryLength: sq, keyLength: skv) }
        output = []
        logSumExp = []
        var tile = [Float](repeating: 0, count: sq * skv)
        for b in 0..<shape.batch {
            for h in 0..<shape.queryHeads {
                let qBase = (b * shape.queryHeads + h) * sq * d
                let kvHead = b * shape.keyValueHeads + h / shape.groupSize
                for i in 0..<sq {
                    for j in 0..<skv {
                        var dot: Float = 0
                        for c in 0..<d { dot += q[qBase + i * d + c] * k[(kvHead * skv + j) * d + c] }
                        tile[j * sq + i] = scale * dot
                    }
                }
                tile.withUnsafeMutableBufferPointer { values in
                    guard let pointer = values.baseAddress else { return }
                    let scores = ScoreTile(values: pointer, stride: sq, batch: b, head: h, queries: 0..<sq, keys: 0..<skv)
                    scoreMod?.modify(scores, derivative: nil)
                    masking?.mask(scores)
                }
                for i in 0..<sq {
                    let row = (0..<skv).map { Double(tile[$0 * sq + i]) }
                    let top = row.max() ?? -.infinity
                    guard top > -.infinity else {
                        output += [Float](repeating: 0, count: dv)
                        logSumExp.append(-.infinity)
                        continue
                    }
                    let weights = row.map { exp($0 - top) }
                    let sum = weights.reduce(0, +)
                    for c in 0..<dv {
                        var total = 0.0
                        for j in 0..<skv where weights[j] != 0 { total += weights[j] * Double(v[(kvHead * skv + j) * dv + c]) }
                        output.append(Float(total / sum))
                    }
                    logSumExp.append(Float(top + log(sum)))
                }
            }
        }
    }
}
