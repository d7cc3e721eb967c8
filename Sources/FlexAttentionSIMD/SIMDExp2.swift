/// 16 lanes of Float: the vector every element-wise primitive works on (one AVX-512 register, two AVX2 or four
/// NEON registers). The functions here take the concrete type on purpose: in generic code Swift picks the
/// protocol's lane-by-lane comparisons instead of the concrete type's vector instructions.
public typealias FloatLanes = SIMD16<Float>

/// 2^x for every lane, accurate to a few ulp; −∞ (and anything at or below −127) gives 0, 128 and above +∞.
///
/// Splits x = n + f with n = round(x), |f| ≤ 0.5, evaluates a degree-6 polynomial for 2^f and builds 2^n in the
/// exponent field: adding 2^23 + 127 leaves n + 127 in the low mantissa bits, which a shift moves into place.
/// The clamp to [−127, 128] keeps that field from wrapping (n = −127 gives the zero exponent, so 0).
/// Always inlined (`@_transparent`), so each caller compiles it with its own instruction set.
@_transparent
public func exp2Lanes(_ x: FloatLanes) -> FloatLanes {
    let clamped = lanewiseMax(lanewiseMin(x, FloatLanes(repeating: 128)), FloatLanes(repeating: -127))
    let n = clamped.rounded(.toNearestOrEven)
    let f = clamped - n
    // Minimax-style coefficients of 2^f on [-0.5, 0.5].
    var p = FloatLanes(repeating: 1.535336188319500e-4)
    p = p * f + FloatLanes(repeating: 1.339887440266574e-3)
    p = p * f + FloatLanes(repeating: 9.618437357674640e-3)
    p = p * f + FloatLanes(repeating: 5.550332471162809e-2)
    p = p * f + FloatLanes(repeating: 2.402264791363012e-1)
    p = p * f + FloatLanes(repeating: 6.931472028550421e-1)
    p = p * f + FloatLanes(repeating: 1.0)
    let biased = unsafeBitCast(n + FloatLanes(repeating: 8_388_735), to: SIMD16<Int32>.self)
    return p * unsafeBitCast(biased &<< 23, to: FloatLanes.self)
}

/// Lane-wise maximum as one compare and blend (the standard library's `pointwiseMax` runs lane by lane).
@_transparent
public func lanewiseMax(_ a: FloatLanes, _ b: FloatLanes) -> FloatLanes {
    a.replacing(with: b, where: a .< b)
}

/// Lane-wise minimum as one compare and blend.
@_transparent
public func lanewiseMin(_ a: FloatLanes, _ b: FloatLanes) -> FloatLanes {
    a.replacing(with: b, where: b .< a)
}
