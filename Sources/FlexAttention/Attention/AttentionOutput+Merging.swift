#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attention over a union of disjoint key sets, from the attention over each set: what cascade (shared-prefix)
/// attention, split-KV decoding and context parallelism combine.
extension AttentionOutput {
    /// Merges forward results computed over disjoint sets of keys for the same queries into the result over all of
    /// them: per row, `LSE = log Σᵢ exp(LSEᵢ)` and `O = Σᵢ exp(LSEᵢ − LSE) · Oᵢ`, in Float64.
    ///
    /// A part whose row keeps nothing (LSE −∞) adds nothing to it; a row that no part keeps gives O = 0 and
    /// LSE = −∞; a row with a NaN LSE in any part gives NaN.
    ///
    /// - Parameter parts: at least one result; outputs `[B, Hq, Sq, Dv]` and log-sum-exps `[B, Hq, Sq]` of equal
    ///   shapes, any dtypes and strides.
    /// - Returns: contiguous O in the first part's output dtype, Float32 LSE; no options (the parts' keys differ).
    /// - Throws: ``FlexAttentionError`` when there are no parts or their shapes differ.
    public static func merging(_ parts: [AttentionOutput]) throws -> AttentionOutput {
        guard let first = parts.first else {
            throw FlexAttentionError.invalidArgument("merging needs at least one attention result")
        }
        let (outputShape, rowShape) = (first.output.shape, first.logSumExp.shape)
        guard outputShape.count == 4, rowShape == Array(outputShape.dropLast()) else {
            throw FlexAttentionError.invalidArgument(
                "an attention result has O \(outputShape) and LSE \(rowShape); expected [B, Hq, Sq, Dv] and [B, Hq, Sq]")
        }
        for (index, part) in parts.enumerated() where part.output.shape != outputShape || part.logSumExp.shape != rowShape {
            throw FlexAttentionError.invalidArgument(
                "part \(index) has O \(part.output.shape) and LSE \(part.logSumExp.shape), part 0 \(outputShape) and \(rowShape)")
        }
        let rows = rowShape.reduce(1, *)
        let width = outputShape[3]
        let outputs = parts.map { $0.output.floats() }
        let logSumExps = parts.map { $0.logSumExp.floats() }
        var merged = [Float](repeating: 0, count: rows * width)
        var mergedLogSumExp = [Float](repeating: -.infinity, count: rows)
        var row = [Double](repeating: 0, count: width)
        for r in 0..<rows {
            let values = logSumExps.map { Double($0[r]) }
            let weights = LogSumExpMerge(values)
            mergedLogSumExp[r] = Float(weights.logSumExp)
            guard !weights.logSumExp.isNaN else {
                for c in 0..<width { merged[r * width + c] = .nan }
                continue
            }
            guard weights.logSumExp > -.infinity else { continue }  // kept by no part: O = 0
            for c in 0..<width { row[c] = 0 }
            for (part, weight) in weights.weights.enumerated() where weight > 0 {
                for c in 0..<width { row[c] += weight * Double(outputs[part][r * width + c]) }
            }
            for c in 0..<width { merged[r * width + c] = Float(row[c]) }
        }
        return AttentionOutput(
            output: try Tensor(merged, shape: outputShape, dtype: first.output.dtype),
            logSumExp: try Tensor(mergedLogSumExp, shape: rowShape))
    }
}

/// Parts of a row merged by their log-sum-exps, the one definition every merge uses (``AttentionOutput/merging(_:)``,
/// split-KV decoding, sinks): `LSE = log Σᵢ exp(LSEᵢ)` and the weights `exp(LSEᵢ − LSE)` of the parts' outputs.
/// A part of LSE −∞ weighs 0; with no part kept, LSE is −∞; a NaN part, or +∞ (an overflowed part), makes it NaN.
struct LogSumExpMerge {
    let weights: [Double]
    let logSumExp: Double

    init(_ parts: [Double]) {
        guard !parts.contains(where: \.isNaN), let maximum = parts.max(), maximum < .infinity else {
            weights = parts.map { _ in .nan }
            logSumExp = .nan
            return
        }
        guard maximum > -.infinity else {
            weights = parts.map { _ in 0 }
            logSumExp = -.infinity
            return
        }
        let total = parts.reduce(0) { $0 + naturalExp($1 - maximum) }
        weights = parts.map { naturalExp($0 - maximum) / total }
        logSumExp = maximum + naturalLog(total)
    }
}

// The C library's, by their qualified names: inside this module `exp` and `log` are the mods' functions.
#if canImport(Glibc)
private func naturalExp(_ x: Double) -> Double { Glibc.exp(x) }
private func naturalLog(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
private func naturalExp(_ x: Double) -> Double { Darwin.exp(x) }
private func naturalLog(_ x: Double) -> Double { Darwin.log(x) }
#endif
