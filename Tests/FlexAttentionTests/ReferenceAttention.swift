@testable import FlexAttention
import Foundation

/// Naive attention in Float64 that materialises every score: the ground truth the tests compare against.
struct ReferenceAttention {
    let batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, keyLength: Int
    let headDim: Int, valueDim: Int
    /// Inputs as Float64 in logical row-major order.
    let q: [Double], k: [Double], v: [Double]
    let scale: Double
    let keep: (_ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Bool
    /// The score mod, `nil` for none.
    let score: ((_ s: Double, _ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Double)?
    /// Attention sinks, one logit per query head, joining each row's denominator; `nil` for none.
    var sinks: [Double]? = nil

    init(query: Tensor, key: Tensor, value: Tensor, scale: Double? = nil,
         score: ((_ s: Double, _ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Double)? = nil,
         keep: @escaping (_ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Bool = { _, _, _, _ in true }) {
        (batch, queryHeads, queryLength, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        (keyValueHeads, keyLength, valueDim) = (key.shape[1], key.shape[2], value.shape[3])
        q = query.floats().map(Double.init)
        k = key.floats().map(Double.init)
        v = value.floats().map(Double.init)
        self.scale = scale ?? 1 / Double(headDim).squareRoot()
        self.keep = keep
        self.score = score
    }

    /// The natural-unit score of (b, h, i, j) before the score mod.
    func rawScore(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Double {
        let kvh = h / (queryHeads / keyValueHeads)
        var dot = 0.0
        for c in 0..<headDim { dot += q[qIndex(b, h, i) + c] * k[kIndex(b, kvh, j) + c] }
        return dot * scale
    }

    /// ∂score′/∂score by a central difference (1 when there is no score mod). The step stays within half the
    /// distance to 0, so a mod with a kink there (`abs`) is differentiated on the score's own side.
    func scoreSlope(_ s: Double, _ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Double {
        guard let score else { return 1 }
        let step = s == 0 ? 1e-5 : min(1e-5 * max(1, abs(s)), abs(s) / 2)
        return (score(s + step, b, h, i, j) - score(s - step, b, h, i, j)) / (2 * step)
    }

    func qIndex(_ b: Int, _ h: Int, _ i: Int) -> Int { ((b * queryHeads + h) * queryLength + i) * headDim }
    func kIndex(_ b: Int, _ h: Int, _ j: Int) -> Int { ((b * keyValueHeads + h) * keyLength + j) * headDim }
    func vIndex(_ b: Int, _ h: Int, _ j: Int) -> Int { ((b * keyValueHeads + h) * keyLength + j) * valueDim }

    /// Probabilities of row (b, h, i) and its log-sum-exp (−∞ and all zeros when nothing is kept).
    func row(_ b: Int, _ h: Int, _ i: Int) -> (p: [Double], lse: Double) {
        var s = [Double](repeating: -.infinity, count: keyLength)
        for j in 0..<keyLength where keep(b, h, i, j) {
            let raw = rawScore(b, h, i, j)
            s[j] = score?(raw, b, h, i, j) ?? raw
        }
        let sink = sinks?[h] ?? -.infinity
        let m = max(s.max() ?? -.infinity, sink)
        guard m > -.infinity else { return ([Double](repeating: 0, count: keyLength), -.infinity) }
        let e = s.map { ($0 - m).exp }
        let sum = e.reduce(0, +) + (sink - m).exp
        return (e.map { $0 / sum }, m + sum.log)
    }

    /// O `[B, Hq, Sq, Dv]` and LSE `[B, Hq, Sq]`, row-major.
    func forward() -> (o: [Double], lse: [Double]) {
        var o = [Double](repeating: 0, count: batch * queryHeads * queryLength * valueDim)
        var lse = [Double](repeating: 0, count: batch * queryHeads * queryLength)
        for b in 0..<batch {
            for h in 0..<queryHeads {
                let kvh = h / (queryHeads / keyValueHeads)
                for i in 0..<queryLength {
                    let (p, l) = row(b, h, i)
                    let rowIndex = (b * queryHeads + h) * queryLength + i
                    lse[rowIndex] = l
                    for j in 0..<keyLength where p[j] != 0 {
                        for c in 0..<valueDim { o[rowIndex * valueDim + c] += p[j] * v[vIndex(b, kvh, j) + c] }
                    }
                }
            }
        }
        return (o, lse)
    }

    /// Σ O ∘ dO: the loss whose gradients ``backward(outputGradient:)`` returns.
    func loss(outputGradient dO: [Double]) -> Double {
        zip(forward().o, dO).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// ∂(Σ O ∘ dO)/∂sink per query head: −Σ over the head's rows of e^(sink − LSE) · Σ_j p_j dP_j.
    func sinkGradient(outputGradient dO: [Double]) -> [Double] {
        guard let sinks else { return [] }
        let (o, lse) = forward()
        var gradient = [Double](repeating: 0, count: queryHeads)
        for row in lse.indices where lse[row] > -.infinity {
            let h = row / queryLength % queryHeads
            let delta = (0..<valueDim).reduce(0.0) { $0 + dO[row * valueDim + $1] * o[row * valueDim + $1] }
            gradient[h] -= (sinks[h] - lse[row]).exp * delta
        }
        return gradient
    }

    /// dQ, dK, dV (row-major, shapes of Q, K, V) for the output gradient `dO`.
    func backward(outputGradient dO: [Double]) -> (dq: [Double], dk: [Double], dv: [Double]) {
        var dq = [Double](repeating: 0, count: q.count)
        var dk = [Double](repeating: 0, count: k.count)
        var dv = [Double](repeating: 0, count: v.count)
        for b in 0..<batch {
            for h in 0..<queryHeads {
                let kvh = h / (queryHeads / keyValueHeads)
                for i in 0..<queryLength {
                    let (p, _) = row(b, h, i)
                    let rowIndex = (b * queryHeads + h) * queryLength + i
                    var dp = [Double](repeating: 0, count: keyLength)
                    for j in 0..<keyLength {
                        for c in 0..<valueDim {
                            dp[j] += dO[rowIndex * valueDim + c] * v[vIndex(b, kvh, j) + c]
                            dv[vIndex(b, kvh, j) + c] += p[j] * dO[rowIndex * valueDim + c]
                        }
                    }
                    let delta = zip(p, dp).reduce(0) { $0 + $1.0 * $1.1 }
                    for j in 0..<keyLength where p[j] != 0 {
                        let ds = p[j] * (dp[j] - delta) * scale * scoreSlope(rawScore(b, h, i, j), b, h, i, j)
                        for c in 0..<headDim {
                            dq[qIndex(b, h, i) + c] += ds * k[kIndex(b, kvh, j) + c]
                            dk[kIndex(b, kvh, j) + c] += ds * q[qIndex(b, h, i) + c]
                        }
                    }
                }
            }
        }
        return (dq, dk, dv)
    }
}

extension Double {
    var exp: Double { Foundation.exp(self) }
    var log: Double { Foundation.log(self) }
    var tanhValue: Double { Foundation.tanh(self) }
}
