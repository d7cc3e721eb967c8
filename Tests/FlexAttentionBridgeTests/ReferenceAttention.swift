import Foundation

/// Naive attention in Float64 that materialises every score, forward and backward: the ground truth of the bridge
/// tests. Inputs and outputs are row-major `[B, H, S, D]` arrays.
struct ReferenceAttention {
    let b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int
    let q: [Double], k: [Double], v: [Double]
    let scale: Double
    /// Which scores are kept.
    var keep: (_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Bool = { _, _, _, _ in true }
    /// The score mod and its slope ∂score′/∂score; identity when nil.
    var score: ((_ s: Double, _ b: Int, _ h: Int, _ i: Int, _ j: Int) -> (value: Double, slope: Double))? = nil
    /// One sink logit per query head; none when nil.
    var sinks: [Double]? = nil

    init(shape: (Int, Int, Int, Int, Int, Int, Int), q: [Double], k: [Double], v: [Double], scale: Double) {
        (b, hq, hkv, sq, skv, d, dv) = shape
        (self.q, self.k, self.v, self.scale) = (q, k, v, scale)
    }

    private func kvHead(_ h: Int) -> Int { h / (hq / hkv) }
    private func qRow(_ b: Int, _ h: Int, _ i: Int) -> Int { (b * hq + h) * sq + i }
    private func kRow(_ b: Int, _ h: Int, _ j: Int) -> Int { (b * hkv + kvHead(h)) * skv + j }

    /// Row (b, h, i): probabilities, the slopes of its kept scores, and its log-sum-exp (−∞ when nothing is kept
    /// and there is no sink).
    private func row(_ b: Int, _ h: Int, _ i: Int) -> (p: [Double], slope: [Double], lse: Double) {
        var scores = [Double](repeating: -.infinity, count: skv)
        var slopes = [Double](repeating: 0, count: skv)
        for j in 0..<skv where keep(b, h, i, j) {
            var dot = 0.0
            for c in 0..<d { dot += q[qRow(b, h, i) * d + c] * k[kRow(b, h, j) * d + c] }
            let (value, slope) = score?(dot * scale, b, h, i, j) ?? (dot * scale, 1)
            (scores[j], slopes[j]) = (value, slope)
        }
        let sink = sinks?[h] ?? -.infinity
        let m = max(scores.max() ?? -.infinity, sink)
        guard m > -.infinity else { return ([Double](repeating: 0, count: skv), slopes, -.infinity) }
        let e = scores.map { exp($0 - m) }
        let sum = e.reduce(0, +) + exp(sink - m)
        return (e.map { $0 / sum }, slopes, m + log(sum))
    }

    /// O `[B, Hq, Sq, Dv]` and the log-sum-exp `[B, Hq, Sq]`.
    func forward() -> (o: [Double], lse: [Double]) {
        var o = [Double](repeating: 0, count: b * hq * sq * dv)
        var lse = [Double](repeating: 0, count: b * hq * sq)
        for bb in 0..<b {
            for h in 0..<hq {
                for i in 0..<sq {
                    let (p, _, l) = row(bb, h, i)
                    let r = qRow(bb, h, i)
                    lse[r] = l
                    for j in 0..<skv where p[j] != 0 {
                        for c in 0..<dv { o[r * dv + c] += p[j] * v[kRow(bb, h, j) * dv + c] }
                    }
                }
            }
        }
        return (o, lse)
    }

    /// Gradients of Σ O ∘ dO: dQ, dK, dV, the sinks' gradient, and ∂loss/∂score′ of every score `[B, Hq, Sq, Skv]`
    /// (what a table added to the scores receives).
    func backward(_ dO: [Double]) -> (dq: [Double], dk: [Double], dv: [Double], dsink: [Double], dscore: [Double]) {
        var (dq, dk, dvv) = ([Double](repeating: 0, count: q.count), [Double](repeating: 0, count: k.count),
                             [Double](repeating: 0, count: v.count))
        var dsink = [Double](repeating: 0, count: hq)
        var dscore = [Double](repeating: 0, count: b * hq * sq * skv)
        for bb in 0..<b {
            for h in 0..<hq {
                for i in 0..<sq {
                    let (p, slope, lse) = row(bb, h, i)
                    let r = qRow(bb, h, i)
                    var dp = [Double](repeating: 0, count: skv)
                    var delta = 0.0
                    for j in 0..<skv {
                        for c in 0..<dv {
                            dp[j] += dO[r * dv + c] * v[kRow(bb, h, j) * dv + c]
                            dvv[kRow(bb, h, j) * dv + c] += p[j] * dO[r * dv + c]
                        }
                        delta += p[j] * dp[j]
                    }
                    if let sinks, lse > -.infinity { dsink[h] -= exp(sinks[h] - lse) * delta }
                    for j in 0..<skv where p[j] != 0 {
                        let ds = p[j] * (dp[j] - delta)
                        dscore[r * skv + j] = ds
                        for c in 0..<d {
                            dq[r * d + c] += ds * slope[j] * scale * k[kRow(bb, h, j) * d + c]
                            dk[kRow(bb, h, j) * d + c] += ds * slope[j] * scale * q[r * d + c]
                        }
                    }
                }
            }
        }
        return (dq, dk, dvv, dsink, dscore)
    }
}
