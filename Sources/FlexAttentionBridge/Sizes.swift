/// The largest batch, head count or length the C interface takes: the kernels index with 32-bit integers.
let largestSize = Int64(Int32.max)

/// A size from C, checked to be in `1...largestSize`, or `0...largestSize` when not `positive`.
func checkSize(_ value: Int64, named name: String, positive: Bool) throws -> Int {
    guard value >= (positive ? 1 : 0), value <= largestSize else {
        throw BridgeError.invalid("\(name) is \(value); it must be in \(positive ? 1 : 0)...\(largestSize)")
    }
    return Int(value)
}
