extension CUDAConformance {
    /// Compares a sink gradient with the CPU's against the size of the terms it sums rather than its own size.
    /// `∂loss/∂sink_h = −Σ_rows e^(sink_h − LSE′)·Δ` with `Δ = Σ_c dO_c·O′_c`, and Δ is a sum of products of
    /// either sign: where they cancel, the rounding of O′ to bf16 or fp16 moves the result by far more than its
    /// own magnitude times the dtype's precision (a relative test failed one seed in eight). Each head must be
    /// within `tolerance · Σ_rows e^(sink_h − LSE′)·Σ_c |dO_c·O′_c|`, from the CPU's sink-adjusted forward.
    func sinkGradientFailure(
        _ name: String, got: [Float], want: [Float], forward: AttentionOutput, outputGradient: Tensor, sinks: [Float],
        tolerance: Float
    ) -> String? {
        guard got.count == want.count, want.count == sinks.count else {
            return "\(name): \(got.count) values, expected \(want.count)"
        }
        let shape = forward.output.shape
        let (heads, length, width) = (shape[1], shape[2], shape[3])
        let (output, upstream, logSumExp) = (forward.output.floats(), outputGradient.floats(), forward.logSumExp.floats())
        var scale = [Double](repeating: 0, count: heads)
        for row in logSumExp.indices where logSumExp[row].isFinite {
            let h = row / length % heads
            var magnitude = 0.0
            for c in row * width..<(row + 1) * width { magnitude += abs(Double(upstream[c]) * Double(output[c])) }
            scale[h] += naturalExp(Double(sinks[h]) - Double(logSumExp[row])) * magnitude
        }
        for h in 0..<heads {
            let bound = Double(tolerance) * max(scale[h], 1e-30)
            guard abs(Double(got[h]) - Double(want[h])) <= bound || (got[h].isNaN && want[h].isNaN) else {
                return "\(name)[\(h)]: GPU \(got[h]), CPU \(want[h]), allowed ±\(Float(bound))"
            }
        }
        return nil
    }
}

// The C library's, by its qualified name: inside this module `exp` is the mods' function.
#if canImport(Glibc)
import Glibc
private func naturalExp(_ x: Double) -> Double { Glibc.exp(x) }
#elseif canImport(Darwin)
import Darwin
private func naturalExp(_ x: Double) -> Double { Darwin.exp(x) }
#endif
