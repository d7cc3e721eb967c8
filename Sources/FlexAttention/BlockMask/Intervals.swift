/// Bounds on an Int expression over a region; every operation widens to the whole line rather than wrap.
struct IntInterval: Equatable {
    var lower: Int
    var upper: Int

    static let all = IntInterval(lower: .min, upper: .max)

    init(lower: Int, upper: Int) {
        self.lower = lower
        self.upper = upper
    }

    init(_ value: Int) { self.init(lower: value, upper: value) }

    init(_ range: Range<Int>) { self.init(lower: range.lowerBound, upper: range.upperBound - 1) }

    /// The smallest interval holding the given values, or ``all`` when one of them overflowed.
    init(_ candidates: [(Int, overflow: Bool)]) {
        guard !candidates.contains(where: \.overflow) else {
            self = .all
            return
        }
        self.init(lower: candidates.map(\.0).min() ?? .min, upper: candidates.map(\.0).max() ?? .max)
    }

    var isSingleValue: Bool { lower == upper }

    func contains(_ value: Int) -> Bool { lower <= value && value <= upper }

    // Sums and differences avoid the array of candidates: they are the common case of index arithmetic.
    static func + (x: IntInterval, y: IntInterval) -> IntInterval {
        let (lower, lowOverflow) = x.lower.addingReportingOverflow(y.lower)
        let (upper, highOverflow) = x.upper.addingReportingOverflow(y.upper)
        return lowOverflow || highOverflow ? .all : IntInterval(lower: lower, upper: upper)
    }

    static func - (x: IntInterval, y: IntInterval) -> IntInterval {
        let (lower, lowOverflow) = x.lower.subtractingReportingOverflow(y.upper)
        let (upper, highOverflow) = x.upper.subtractingReportingOverflow(y.lower)
        return lowOverflow || highOverflow ? .all : IntInterval(lower: lower, upper: upper)
    }

    static func * (x: IntInterval, y: IntInterval) -> IntInterval {
        IntInterval([x.lower, x.upper].flatMap { a in [y.lower, y.upper].map { a.multipliedReportingOverflow(by: $0) } })
    }

    static prefix func - (x: IntInterval) -> IntInterval { IntInterval(0) - x }

    var magnitude: IntInterval {
        if lower >= 0 { return self }
        if upper <= 0 { return -self }
        return IntInterval(lower: 0, upper: max(upper, (-IntInterval(lower)).upper))
    }

    /// Floor division by a divisor that excludes 0: monotone in each operand, so the corners bound it.
    func quotient(_ y: IntInterval) -> IntInterval {
        guard y.lower > 0 || y.upper < 0 else { return .all }
        let corners = [lower, upper].flatMap { a in [y.lower, y.upper].map { IntegerDivision.quotient(a, $0) } }
        return IntInterval(lower: corners.min() ?? .min, upper: corners.max() ?? .max)
    }

    /// Floor remainder by a divisor that excludes 0: within one period it follows the dividend.
    func remainder(_ y: IntInterval) -> IntInterval {
        guard y.lower > 0 || y.upper < 0 else { return .all }
        if y.isSingleValue, quotient(y).isSingleValue {
            return IntInterval(lower: IntegerDivision.remainder(lower, y.lower), upper: IntegerDivision.remainder(upper, y.lower))
        }
        return y.lower > 0 ? IntInterval(lower: 0, upper: y.upper - 1) : IntInterval(lower: y.lower + 1, upper: 0)
    }

    static func minimum(_ x: IntInterval, _ y: IntInterval) -> IntInterval {
        IntInterval(lower: min(x.lower, y.lower), upper: min(x.upper, y.upper))
    }

    static func maximum(_ x: IntInterval, _ y: IntInterval) -> IntInterval {
        IntInterval(lower: max(x.lower, y.lower), upper: max(x.upper, y.upper))
    }

    func union(_ other: IntInterval) -> IntInterval {
        IntInterval(lower: min(lower, other.lower), upper: max(upper, other.upper))
    }
}

/// Bounds on a Float expression, rounded outward so that they hold whatever rounding the vector code does;
/// `mayBeNaN` marks operations that can give NaN, where nothing is known.
struct FloatInterval: Equatable {
    var lower: Float
    var upper: Float
    var mayBeNaN = false

    static let unknown = FloatInterval(lower: -.infinity, upper: .infinity, mayBeNaN: true)

    /// Bounds holding every value in `candidates` give or take a few ulp (the vector exp and tanh are that close).
    init(widening candidates: [Float]) {
        guard !candidates.contains(where: \.isNaN) else {
            self = .unknown
            return
        }
        let (low, high) = (candidates.min() ?? -.infinity, candidates.max() ?? .infinity)
        let slack: (Float) -> Float = { $0.magnitude * 0x1p-16 + .leastNormalMagnitude }
        self.init(lower: low - slack(low), upper: high + slack(high))
    }

    init(lower: Float, upper: Float, mayBeNaN: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.mayBeNaN = mayBeNaN
    }

    init(_ ints: IntInterval) { self.init(widening: [Float(ints.lower), Float(ints.upper)]) }

    var isFinite: Bool { !mayBeNaN && lower.isFinite && upper.isFinite }

    /// Bounds of `f` applied lane-wise, from its values at the corners, when it is monotone there; unknown when
    /// an operand may be infinite or NaN.
    static func corners(_ x: FloatInterval, _ y: FloatInterval, _ f: (Float, Float) -> Float) -> FloatInterval {
        guard x.isFinite, y.isFinite else { return .unknown }
        return FloatInterval(widening: [f(x.lower, y.lower), f(x.lower, y.upper), f(x.upper, y.lower), f(x.upper, y.upper)])
    }

    /// Bounds of a non-decreasing function.
    func increasing(_ f: (Float) -> Float) -> FloatInterval {
        isFinite ? FloatInterval(widening: [f(lower), f(upper)]) : .unknown
    }

    static prefix func - (x: FloatInterval) -> FloatInterval {
        FloatInterval(lower: -x.upper, upper: -x.lower, mayBeNaN: x.mayBeNaN)
    }

    var magnitude: FloatInterval {
        if lower >= 0 { return self }
        if upper <= 0 { return -self }
        return FloatInterval(lower: 0, upper: max(-lower, upper), mayBeNaN: mayBeNaN)
    }

    static func minimum(_ x: FloatInterval, _ y: FloatInterval) -> FloatInterval {
        FloatInterval(lower: min(x.lower, y.lower), upper: min(x.upper, y.upper), mayBeNaN: x.mayBeNaN || y.mayBeNaN)
    }

    static func maximum(_ x: FloatInterval, _ y: FloatInterval) -> FloatInterval {
        FloatInterval(lower: max(x.lower, y.lower), upper: max(x.upper, y.upper), mayBeNaN: x.mayBeNaN || y.mayBeNaN)
    }

    func union(_ other: FloatInterval) -> FloatInterval {
        FloatInterval(lower: min(lower, other.lower), upper: max(upper, other.upper), mayBeNaN: mayBeNaN || other.mayBeNaN)
    }
}

/// The values a Bool expression may take over a region.
struct BoolSet: Equatable {
    var canBeFalse: Bool
    var canBeTrue: Bool

    static let either = BoolSet(canBeFalse: true, canBeTrue: true)

    init(canBeFalse: Bool, canBeTrue: Bool) {
        self.canBeFalse = canBeFalse
        self.canBeTrue = canBeTrue
    }

    /// `true` when `surelyTrue`, `false` when `surelyFalse`, else either.
    init(surelyTrue: Bool, surelyFalse: Bool) {
        self.init(canBeFalse: !surelyTrue, canBeTrue: !surelyFalse)
    }

    static prefix func ! (x: BoolSet) -> BoolSet { BoolSet(canBeFalse: x.canBeTrue, canBeTrue: x.canBeFalse) }

    static func && (x: BoolSet, y: BoolSet) -> BoolSet {
        BoolSet(canBeFalse: x.canBeFalse || y.canBeFalse, canBeTrue: x.canBeTrue && y.canBeTrue)
    }

    static func || (x: BoolSet, y: BoolSet) -> BoolSet { !(!x && !y) }

    /// Whether `x == y` can be true and can be false.
    static func equal(_ x: BoolSet, _ y: BoolSet) -> BoolSet {
        let xFixed = x.canBeTrue != x.canBeFalse, yFixed = y.canBeTrue != y.canBeFalse
        guard xFixed && yFixed else { return .either }
        let same = x.canBeTrue == y.canBeTrue
        return BoolSet(canBeFalse: !same, canBeTrue: same)
    }

    func union(_ other: BoolSet) -> BoolSet {
        BoolSet(canBeFalse: canBeFalse || other.canBeFalse, canBeTrue: canBeTrue || other.canBeTrue)
    }
}
