/// 2^x for every lane, accurate to a few ulp; −∞ (and anything at or below −127) gives 0, 128 and above +∞.
///
/// Splits x = n + f with n = round(x), |f| ≤ 0.5, evaluates a degree-6 polynomial for 2^f and builds 2^n in the
/// exponent field: adding 2^23 + 127 leaves n + 127 in the low mantissa bits, which a shift moves into place.
/// The clamp to [−127, 128] keeps that field from wrapping (n = −127 gives the zero exponent, so 0).
@inlinable @inline(__always)
public func exp2Lanes<V: SIMD>(_ x: V) -> V where V.Scalar == Float, V.MaskStorage.Scalar == Int32 {
    let clamped = x.clamped(lowerBound: V(repeating: -127), upperBound: V(repeating: 128))
    let n = clamped.rounded(.toNearestOrEven)
    let f = clamped - n
    // Taylor-like minimax coefficients of 2^f on [-0.5, 0.5].
    var p = V(repeating: 1.535336188319500e-4)
    p = p * f + V(repeating: 1.339887440266574e-3)
    p = p * f + V(repeating: 9.618437357674640e-3)
    p = p * f + V(repeating: 5.550332471162809e-2)
    p = p * f + V(repeating: 2.402264791363012e-1)
    p = p * f + V(repeating: 6.931472028550421e-1)
    p = p * f + V(repeating: 1.0)
    let biased = unsafeBitCast(n + V(repeating: 8_388_735), to: V.MaskStorage.self)
    return p * unsafeBitCast(biased &<< 23, to: V.self)
}
