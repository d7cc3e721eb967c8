#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The usual score mods, each with its textual form.
extension ScoreMod {
    /// ALiBi with the standard slopes 2^(−8(h+1)/H) in the Float table `alibi_slope` (or `tableName`) of shape
    /// `[H]`: `score + alibi_slope[h] * float(kv - q)`. Its gradient is `tableGradients[tableName]`.
    /// - Throws: ``ModError`` when `heads` is not positive.
    public static func alibi(heads: Int, tableName: String = "alibi_slope") throws -> ScoreMod {
        let slopes = (0..<max(heads, 0)).map { exp2f(-8 * Float($0 + 1) / Float(heads)) }
        let slope = try FloatTable(name: tableName, values: slopes, shape: [heads])
        return ScoreMod { score, _, h, q, kv in score + slope[h] * float(kv - q) }
    }

    /// Soft-capping, which bounds scores to (−cap, cap): `cap * tanh(score / cap)`.
    public static func softCap(_ cap: Float) -> ScoreMod {
        ScoreMod { score, _, _, _, _ in ModFloat(cap) * tanh(score / ModFloat(cap)) }
    }

    /// A learnable bias per head and clipped relative position, from the Float table `rel_bias` (or `tableName`) of
    /// shape `[H, 2·maxDistance + 1]`: `score + rel_bias[h, clamp(q - kv, -maxDistance, maxDistance) + maxDistance]`.
    /// Its gradient is `tableGradients[tableName]`.
    /// - Throws: ``ModError`` when `bias` does not have `heads × (2·maxDistance + 1)` values.
    public static func relativePositionBias(
        _ bias: [Float], heads: Int, maxDistance: Int, tableName: String = "rel_bias"
    ) throws -> ScoreMod {
        let table = try FloatTable(name: tableName, values: bias, shape: [heads, 2 * maxDistance + 1])
        let distance = ModInt(maxDistance)
        return ScoreMod { score, _, h, q, kv in score + table[h, clamp(q - kv, -distance, distance) + distance] }
    }
}
