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

/// `min`, `max` and `clamp` with captured Swift integers, and `clamp` with captured floating-point values, beside
/// traced ones (`clamp(q - kv, -distance, distance)` with `let distance = 32`): the numbers become literals of the
/// mod, as with the operators above. (`min` and `max` of a traced Float and a plain one would make
/// `max(1.5, 2)` ambiguous in user code; write `ModFloat(x)` there.)
public func min<I: BinaryInteger>(_ x: ModInt, _ y: I) -> ModInt { min(x, ModInt(Int(y))) }
public func min<I: BinaryInteger>(_ x: I, _ y: ModInt) -> ModInt { min(ModInt(Int(x)), y) }
public func max<I: BinaryInteger>(_ x: ModInt, _ y: I) -> ModInt { max(x, ModInt(Int(y))) }
public func max<I: BinaryInteger>(_ x: I, _ y: ModInt) -> ModInt { max(ModInt(Int(x)), y) }
public func clamp<I: BinaryInteger>(_ x: ModInt, _ low: I, _ high: I) -> ModInt {
    clamp(x, ModInt(Int(low)), ModInt(Int(high)))
}
public func clamp<F: BinaryFloatingPoint>(_ x: ModFloat, _ low: F, _ high: F) -> ModFloat {
    clamp(x, ModFloat(Float(low)), ModFloat(Float(high)))
}
