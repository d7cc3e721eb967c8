/// Int `/` and `%` as in Python: the quotient rounds toward −∞ and the remainder takes the divisor's sign.
/// Division by zero gives 0 here; the domain checks report it as ``ModError/divisionByZero(at:)``.
enum IntegerDivision {
    static func quotient(_ x: Int, _ y: Int) -> Int {
        guard y != 0 else { return 0 }
        let (q, _) = x.dividedReportingOverflow(by: y)
        let r = x.remainderReportingOverflow(dividingBy: y).partialValue
        return r != 0 && (r < 0) != (y < 0) ? q &- 1 : q
    }

    static func remainder(_ x: Int, _ y: Int) -> Int {
        guard y != 0 else { return 0 }
        let r = x.remainderReportingOverflow(dividingBy: y).partialValue
        return r != 0 && (r < 0) != (y < 0) ? r &+ y : r
    }
}
