extension Tensor: CustomStringConvertible {
    /// How many leading elements ``description`` shows.
    static let describedElementCount = 6

    /// Shape, dtype, the layout or strides when not row-major, and the first few elements in logical order, e.g.
    /// `Tensor([1, 8, 1024, 64], bfloat16) [0.125, -0.5, …]`, so a tensor in a log or debugger says what it is
    /// without dumping it.
    public var description: String {
        var header = "Tensor(\(shape), \(dtype)"
        if !isContiguous {
            header += denseLayout == .bshd ? ", bshd" : ", strides \(strides)"
        }
        var values = [String]()
        forEachOffset(limit: Tensor.describedElementCount) { values.append(load(atElementOffset: $0).description) }
        if elementCount > Tensor.describedElementCount { values.append("…") }
        return header + ") [" + values.joined(separator: ", ") + "]"
    }
}
