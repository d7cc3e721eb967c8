/// Reads `count` (at most 16) floats; lanes past `count` are 0.
@inlinable @inline(__always)
public func loadLanes(_ pointer: UnsafePointer<Float>, count: Int) -> FloatLanes {
    if count == 16 { return UnsafeRawPointer(pointer).loadUnaligned(as: FloatLanes.self) }
    var lanes = FloatLanes.zero
    for lane in 0..<count { lanes[lane] = pointer[lane] }
    return lanes
}

/// Writes the first `count` (at most 16) lanes.
@inlinable @inline(__always)
public func storeLanes(_ lanes: FloatLanes, to pointer: UnsafeMutablePointer<Float>, count: Int) {
    if count == 16 {
        UnsafeMutableRawPointer(pointer).storeBytes(of: lanes, as: FloatLanes.self)
    } else {
        for lane in 0..<count { pointer[lane] = lanes[lane] }
    }
}
