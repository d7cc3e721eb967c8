/// Minimum and maximum of a table over a box of indices, for interval analysis of lookups.
///
/// A segment tree over the row-major elements answers a contiguous run in O(log n) with 2n extra entries per
/// bound. A box is one run per combination of its outer indices; past ``maximumRuns`` runs the whole table's
/// bounds are used instead, which is looser but still sound.
struct TableExtremes: Sendable {
    static let maximumRuns = 64

    let shape: [Int]
    /// Segment trees of the elements as Double (exact for Int32 and Float): leaves at `count..<2·count`.
    private let minima: [Double]
    private let maxima: [Double]
    /// Whether a Float table holds a NaN, which no bounds describe.
    let hasNaN: Bool

    init(_ table: ModTable) {
        let values: [Double] = switch table.elements {
        case .int32(let ints): ints.map(Double.init)
        case .float(let floats): floats.map(Double.init)
        }
        let count = values.count
        var minima = [Double](repeating: 0, count: count) + values
        var maxima = minima
        for node in stride(from: count - 1, to: 0, by: -1) {
            minima[node] = min(minima[2 * node], minima[2 * node + 1])
            maxima[node] = max(maxima[2 * node], maxima[2 * node + 1])
        }
        shape = table.shape
        self.minima = minima
        self.maxima = maxima
        hasNaN = values.contains(where: \.isNaN)
    }

    /// Bounds of the elements whose indices lie in `box` (one interval per axis, already inside the shape).
    func bounds(_ box: UnsafeBufferPointer<IntInterval>) -> (lower: Double, upper: Double) {
        if box.count == 1 { return run(box[0].lower, box[0].upper + 1) }
        var runs = 1
        for axis in box.dropLast() { runs = runs.multipliedReportingOverflow(by: axis.upper - axis.lower + 1).partialValue }
        guard runs >= 1, runs <= Self.maximumRuns else { return run(0, minima.count / 2) }
        var lower = Double.infinity, upper = -Double.infinity
        var outer = box.dropLast().map(\.lower)
        let last = box[box.count - 1]
        while true {
            var start = 0
            for (axis, index) in outer.enumerated() { start = (start + index) * shape[axis + 1] }
            let bounds = run(start + last.lower, start + last.upper + 1)
            lower = min(lower, bounds.lower)
            upper = max(upper, bounds.upper)
            // Next combination of outer indices, last axis fastest.
            var axis = outer.count - 1
            while axis >= 0 {
                outer[axis] += 1
                if outer[axis] <= box[axis].upper { break }
                outer[axis] = box[axis].lower
                axis -= 1
            }
            if axis < 0 { return (lower, upper) }
        }
    }

    /// Bounds of the flat elements `start..<end`.
    private func run(_ start: Int, _ end: Int) -> (lower: Double, upper: Double) {
        var lower = Double.infinity, upper = -Double.infinity
        var (left, right) = (start + minima.count / 2, end + minima.count / 2)
        while left < right {
            if left & 1 == 1 {
                lower = min(lower, minima[left])
                upper = max(upper, maxima[left])
                left += 1
            }
            if right & 1 == 1 {
                right -= 1
                lower = min(lower, minima[right])
                upper = max(upper, maxima[right])
            }
            left >>= 1
            right >>= 1
        }
        return (lower, upper)
    }
}
