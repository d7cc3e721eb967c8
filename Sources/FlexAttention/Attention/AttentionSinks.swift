#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attention sinks (gpt-oss style): a learnable logit per query head that joins every row's softmax denominator and
/// carries no value. They change no attention kernel (an ``AttentionPlan`` runs the same two steps as row-wise
/// kernels, ``SinkForwardKernel`` and ``SinkGradientKernel``):
/// - forward: `LSE′ = log(e^LSE + e^sink)` and `O′ = O · e^(LSE − LSE′)` from the sink-free result;
/// - backward: the usual backward on `O′` and `LSE′` gives dQ, dK and dV, because the probabilities it recomputes
///   from `LSE′` are the sink-adjusted ones and `Δ = dO · O′` already excludes the sink, which has no value; and
///   `∂loss/∂sink_h = −Σ e^(sink_h − LSE′) · Δ` over the rows of head `h`.
enum AttentionSinks {
    /// Checks that `sinks` has one finite-or-−∞ logit per query head.
    static func check(_ sinks: [Float], queryHeads: Int) throws {
        guard sinks.count == queryHeads else {
            throw FlexAttentionError.invalidArgument("\(sinks.count) sink logits for \(queryHeads) query heads")
        }
        if let bad = sinks.first(where: { $0.isNaN || $0 == .infinity }) {
            throw FlexAttentionError.invalidArgument("a sink logit is \(bad); it must be finite or −∞")
        }
    }

    /// The forward result with the sinks joined to each row's denominator: the row and its sink are two parts
    /// merged by ``LogSumExpMerge``, the sink's having no value (O = 0). A row that keeps nothing gets LSE′ = sink
    /// and O′ = 0, a NaN row stays NaN, and a head whose sink is −∞ keeps its rows as they are.
    static func forward(_ result: AttentionOutput, sinks: [Float], options: AttentionOptions?) throws -> AttentionOutput {
        let shape = result.output.shape
        let (heads, length, width) = (shape[1], shape[2], shape[3])
        var output = result.output.floats()
        var logSumExp = result.logSumExp.floats()
        for row in logSumExp.indices where sinks[row / length % heads] > -.infinity {
            let merge = LogSumExpMerge([Double(logSumExp[row]), Double(sinks[row / length % heads])])
            let weight = merge.weights[0]
            for c in row * width..<(row + 1) * width { output[c] = weight == 0 ? 0 : Float(Double(output[c]) * weight) }
            logSumExp[row] = Float(merge.logSumExp)
        }
        return AttentionOutput(
            output: try Tensor(output, shape: shape, dtype: result.output.dtype),
            logSumExp: try Tensor(logSumExp, shape: result.logSumExp.shape), options: options)
    }

    /// `∂loss/∂sink`, Float32 `[Hq]`, from the sink-adjusted forward result and `dO`.
    static func gradient(forward: AttentionOutput, outputGradient: Tensor, sinks: [Float]) throws -> Tensor {
        let shape = forward.output.shape
        let (heads, length, width) = (shape[1], shape[2], shape[3])
        let output = forward.output.floats()
        let upstream = outputGradient.floats()
        let logSumExp = forward.logSumExp.floats()
        var gradient = [Double](repeating: 0, count: heads)
        for row in logSumExp.indices where sinks[row / length % heads] > -.infinity {
            let h = row / length % heads
            var delta = 0.0
            for c in row * width..<(row + 1) * width { delta += Double(upstream[c]) * Double(output[c]) }
            gradient[h] -= exp(Double(sinks[h]) - Double(logSumExp[row])) * delta
        }
        return try Tensor(gradient.map { Float($0) }, shape: [heads])
    }
}
