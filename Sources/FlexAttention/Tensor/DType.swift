/// The element types a ``Tensor`` can hold. Arithmetic is always accumulated in Float32.
public enum DType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// IEEE 754 single precision.
    case float32
    /// IEEE 754 half precision.
    case float16
    /// Brain floating point: Float32's exponent with a 7-bit mantissa (see ``BFloat16``).
    case bfloat16

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        }
    }

    /// `float32`, `float16` or `bfloat16`.
    public var description: String { rawValue }
}
