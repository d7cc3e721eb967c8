/// tanh for every lane from one vector exponential: tanh|x| = (1 − e^(−2|x|)) / (1 + e^(−2|x|)), with an odd
/// Taylor polynomial for |x| < 0.125, where that quotient loses relative precision. A vector whose lanes all take
/// the polynomial skips the exponential and the division (scaled scores, as in soft-capping, are mostly near 0).
/// Always inlined (`@_transparent`), so each caller compiles it with its own instruction set.
@_transparent
public func tanhLanes(_ x: FloatLanes) -> FloatLanes {
    let negative = x .< 0
    let magnitude = x.replacing(with: -x, where: negative)
    let small = magnitude .< 0.125
    let x2 = x * x
    var series = FloatLanes(repeating: 2.0 / 15).addingProduct(x2, FloatLanes(repeating: -17.0 / 315))
    series = FloatLanes(repeating: -1.0 / 3).addingProduct(x2, series)
    series = x.addingProduct(x * x2, series)
    if all(small) { return series }
    let e = exp2Lanes(magnitude * FloatLanes(repeating: -2 * 1.442695040888963))
    var result = (1 - e) / (1 + e)
    result = result.replacing(with: -result, where: negative)
    return result.replacing(with: series, where: small)
}
