@testable import FlexAttention
import Foundation

/// The tests draw their random inputs from the library's seedable generator; seeds differ per run and are
/// printed on failure, so a failing case can be rerun.
typealias SeededRandom = SplitMix64

/// A fresh seed for every run of the test suite, printed on failure through the test's comments.
func freshSeed() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

/// A tensor of uniform values in [−range, range] (never all zeros).
func randomTensor(_ shape: [Int], dtype: DType = .float32, layout: TensorLayout = .bhsd, range: Float = 1,
                  rng: inout SeededRandom) throws -> Tensor {
    let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -range...range, using: &rng) }
    return try Tensor(values, shape: shape, dtype: dtype, layout: layout)
}

/// ‖a − b‖ / ‖b‖, with NaN anywhere giving +∞.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return .infinity }
        diff += (Double(x) - y) * (Double(x) - y)
        norm += y * y
    }
    guard a.count == b.count else { return .infinity }
    return norm == 0 ? diff.squareRoot() : (diff / norm).squareRoot()
}

/// ‖a − b‖ / ‖b‖ over the finite entries, +∞ when the entries that are infinite differ.
func logSumExpError(_ a: [Float], _ b: [Double]) -> Double {
    guard a.count == b.count, zip(a, b).allSatisfy({ $0.isFinite == $1.isFinite && ($0.isFinite || Double($0) == $1) })
    else { return .infinity }
    let finite = zip(a, b).filter { $0.1.isFinite }
    return relativeError(finite.map(\.0), finite.map(\.1))
}

/// Allowed relative error for outputs computed from inputs of `dtype` (inputs are rounded identically for the
/// reference, so only the accumulation and the output rounding differ).
func tolerance(_ dtype: DType) -> Double {
    switch dtype {
    case .float32: 2e-5
    case .float16: 2e-3
    case .bfloat16: 1e-2
    }
}
