/// A 16-bit brain floating-point number: the upper half of a Float32.
///
/// Conversion from `Float` rounds to nearest, ties to even; NaN stays NaN (quiet) and infinities stay infinite.
public struct BFloat16: Sendable, Hashable, CustomStringConvertible {
    /// The raw 16 bits.
    public var bitPattern: UInt16

    /// Wraps raw bits.
    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds a Float32 to the nearest BFloat16 (ties to even).
    @inlinable public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
            return
        }
        let roundingBias = 0x7FFF &+ ((bits >> 16) & 1)
        bitPattern = UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// The exact Float32 value.
    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    /// The value as its Float32 prints.
    public var description: String { float.description }
}
