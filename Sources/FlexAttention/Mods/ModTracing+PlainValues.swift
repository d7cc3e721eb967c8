/// Captured Swift values mix with traced ones: `q - kv < window` with `let window = 128`, or `cap * tanh(score / cap)`
/// with `let cap: Float = 30` (any integer or floating-point type). Each value becomes a literal of the mod, which,
/// like every literal, is a kernel argument: a mod traced again with another value reuses the compiled kernel.
/// The overloads are generic so that plain literals (`score / 30`) still resolve to the traced operators.
extension ModInt {
    /// `x + y`, the Swift value `y` captured as an Int literal.
    public static func + <I: BinaryInteger>(x: ModInt, y: I) -> ModInt { x + ModInt(Int(y)) }
    /// `x + y`, the Swift value `x` captured as an Int literal.
    public static func + <I: BinaryInteger>(x: I, y: ModInt) -> ModInt { ModInt(Int(x)) + y }
    /// `x - y`, the Swift value `y` captured as an Int literal.
    public static func - <I: BinaryInteger>(x: ModInt, y: I) -> ModInt { x - ModInt(Int(y)) }
    /// `x - y`, the Swift value `x` captured as an Int literal.
    public static func - <I: BinaryInteger>(x: I, y: ModInt) -> ModInt { ModInt(Int(x)) - y }
    /// `x * y`, the Swift value `y` captured as an Int literal.
    public static func * <I: BinaryInteger>(x: ModInt, y: I) -> ModInt { x * ModInt(Int(y)) }
    /// `x * y`, the Swift value `x` captured as an Int literal.
    public static func * <I: BinaryInteger>(x: I, y: ModInt) -> ModInt { ModInt(Int(x)) * y }
    /// `x / y` (floored), the Swift value `y` captured as an Int literal.
    public static func / <I: BinaryInteger>(x: ModInt, y: I) -> ModInt { x / ModInt(Int(y)) }
    /// `x / y` (floored), the Swift value `x` captured as an Int literal.
    public static func / <I: BinaryInteger>(x: I, y: ModInt) -> ModInt { ModInt(Int(x)) / y }
    /// `x % y` (floored: the sign of `y`), the Swift value `y` captured as an Int literal.
    public static func % <I: BinaryInteger>(x: ModInt, y: I) -> ModInt { x % ModInt(Int(y)) }
    /// `x % y` (floored: the sign of `y`), the Swift value `x` captured as an Int literal.
    public static func % <I: BinaryInteger>(x: I, y: ModInt) -> ModInt { ModInt(Int(x)) % y }
    /// `x == y`, the Swift value `y` captured as an Int literal.
    public static func == <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x == ModInt(Int(y)) }
    /// `x == y`, the Swift value `x` captured as an Int literal.
    public static func == <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) == y }
    /// `x != y`, the Swift value `y` captured as an Int literal.
    public static func != <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x != ModInt(Int(y)) }
    /// `x != y`, the Swift value `x` captured as an Int literal.
    public static func != <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) != y }
    /// `x < y`, the Swift value `y` captured as an Int literal.
    public static func < <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x < ModInt(Int(y)) }
    /// `x < y`, the Swift value `x` captured as an Int literal.
    public static func < <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) < y }
    /// `x <= y`, the Swift value `y` captured as an Int literal.
    public static func <= <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x <= ModInt(Int(y)) }
    /// `x <= y`, the Swift value `x` captured as an Int literal.
    public static func <= <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) <= y }
    /// `x > y`, the Swift value `y` captured as an Int literal.
    public static func > <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x > ModInt(Int(y)) }
    /// `x > y`, the Swift value `x` captured as an Int literal.
    public static func > <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) > y }
    /// `x >= y`, the Swift value `y` captured as an Int literal.
    public static func >= <I: BinaryInteger>(x: ModInt, y: I) -> ModBool { x >= ModInt(Int(y)) }
    /// `x >= y`, the Swift value `x` captured as an Int literal.
    public static func >= <I: BinaryInteger>(x: I, y: ModInt) -> ModBool { ModInt(Int(x)) >= y }
}

extension ModFloat {
    /// `x + y`, the Swift value `y` captured as a Float literal.
    public static func + <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModFloat { x + ModFloat(Float(y)) }
    /// `x + y`, the Swift value `x` captured as a Float literal.
    public static func + <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModFloat { ModFloat(Float(x)) + y }
    /// `x - y`, the Swift value `y` captured as a Float literal.
    public static func - <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModFloat { x - ModFloat(Float(y)) }
    /// `x - y`, the Swift value `x` captured as a Float literal.
    public static func - <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModFloat { ModFloat(Float(x)) - y }
    /// `x * y`, the Swift value `y` captured as a Float literal.
    public static func * <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModFloat { x * ModFloat(Float(y)) }
    /// `x * y`, the Swift value `x` captured as a Float literal.
    public static func * <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModFloat { ModFloat(Float(x)) * y }
    /// `x / y` (floored), the Swift value `y` captured as a Float literal.
    public static func / <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModFloat { x / ModFloat(Float(y)) }
    /// `x / y` (floored), the Swift value `x` captured as a Float literal.
    public static func / <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModFloat { ModFloat(Float(x)) / y }
    /// `x == y`, the Swift value `y` captured as a Float literal.
    public static func == <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x == ModFloat(Float(y)) }
    /// `x == y`, the Swift value `x` captured as a Float literal.
    public static func == <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) == y }
    /// `x != y`, the Swift value `y` captured as a Float literal.
    public static func != <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x != ModFloat(Float(y)) }
    /// `x != y`, the Swift value `x` captured as a Float literal.
    public static func != <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) != y }
    /// `x < y`, the Swift value `y` captured as a Float literal.
    public static func < <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x < ModFloat(Float(y)) }
    /// `x < y`, the Swift value `x` captured as a Float literal.
    public static func < <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) < y }
    /// `x <= y`, the Swift value `y` captured as a Float literal.
    public static func <= <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x <= ModFloat(Float(y)) }
    /// `x <= y`, the Swift value `x` captured as a Float literal.
    public static func <= <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) <= y }
    /// `x > y`, the Swift value `y` captured as a Float literal.
    public static func > <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x > ModFloat(Float(y)) }
    /// `x > y`, the Swift value `x` captured as a Float literal.
    public static func > <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) > y }
    /// `x >= y`, the Swift value `y` captured as a Float literal.
    public static func >= <F: BinaryFloatingPoint>(x: ModFloat, y: F) -> ModBool { x >= ModFloat(Float(y)) }
    /// `x >= y`, the Swift value `x` captured as a Float literal.
    public static func >= <F: BinaryFloatingPoint>(x: F, y: ModFloat) -> ModBool { ModFloat(Float(x)) >= y }
}
