/// Walking a score tile 16 queries at a time, the width of ``ModTileMachine``.
extension ScoreTile {
    /// Calls `body` for each key row and each run of up to 16 queries in it, with the pointer to the run's
    /// first score and the number of queries it covers, rows first, runs in query order.
    func forEachLaneRun(_ body: (_ key: Int, _ firstQuery: Int, _ count: Int, _ offset: Int) -> Void) {
        for key in keys {
            let row = (key - keys.lowerBound) * stride
            for start in Swift.stride(from: queries.lowerBound, to: queries.upperBound, by: 16) {
                body(key, start, min(16, queries.upperBound - start), row + start - queries.lowerBound)
            }
        }
    }
}

/// Reads `count` (at most 16) floats; lanes past `count` are 0.
func loadLanes(_ pointer: UnsafePointer<Float>, count: Int) -> SIMD16<Float> {
    if count == 16 { return UnsafeRawPointer(pointer).loadUnaligned(as: SIMD16<Float>.self) }
    var lanes = SIMD16<Float>.zero
    for lane in 0..<count { lanes[lane] = pointer[lane] }
    return lanes
}

/// Writes the first `count` (at most 16) lanes.
func storeLanes(_ lanes: SIMD16<Float>, to pointer: UnsafeMutablePointer<Float>, count: Int) {
    if count == 16 {
        UnsafeMutableRawPointer(pointer).storeBytes(of: lanes, as: SIMD16<Float>.self)
    } else {
        for lane in 0..<count { pointer[lane] = lanes[lane] }
    }
}
