@testable import FlexAttention
import Testing

/// One attention problem with NaN or ±∞ written into some rows, and the rows each output must poison, derived here
/// from the documented rules with the mask evaluated element by element.
struct NonFiniteProblem {
    enum Input { case query, key, value, outputGradient }

    let shape: (b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int)
    let dtype: DType
    let keep: (_ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Bool
    private(set) var q: [Float], k: [Float], v: [Float], dO: [Float]

    /// Random inputs in [−1, 1].
    init(shape: (b: Int, hq: Int, hkv: Int, sq: Int, skv: Int, d: Int, dv: Int), dtype: DType = .float32,
         keep: @escaping (_ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Bool, rng: inout SeededRandom) {
        (self.shape, self.dtype, self.keep) = (shape, dtype, keep)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &rng) } }
        q = random(shape.b * shape.hq * shape.sq * shape.d)
        k = random(shape.b * shape.hkv * shape.skv * shape.d)
        v = random(shape.b * shape.hkv * shape.skv * shape.dv)
        dO = random(shape.b * shape.hq * shape.sq * shape.dv)
    }

    /// Writes `value` into column `column` of row `[b, h, s]` of `input` (h is a key head for K and V).
    mutating func set(_ input: Input, _ b: Int, _ h: Int, _ s: Int, column: Int = 0, to value: Float) {
        let heads = input == .key || input == .value ? shape.hkv : shape.hq
        let length = input == .key || input == .value ? shape.skv : shape.sq
        let columns = input == .value || input == .outputGradient ? shape.dv : shape.d
        let index = ((b * heads + h) * length + s) * columns + column
        switch input {
        case .query: q[index] = value
        case .key: k[index] = value
        case .value: v[index] = value
        case .outputGradient: dO[index] = value
        }
    }

    func tensors() throws -> (q: Tensor, k: Tensor, v: Tensor, dO: Tensor) {
        let s = shape
        return (try Tensor(q, shape: [s.b, s.hq, s.sq, s.d], dtype: dtype),
                try Tensor(k, shape: [s.b, s.hkv, s.skv, s.d], dtype: dtype),
                try Tensor(v, shape: [s.b, s.hkv, s.skv, s.dv], dtype: dtype),
                try Tensor(dO, shape: [s.b, s.hq, s.sq, s.dv], dtype: .float32))
    }

    /// The Float64 reference on the inputs with every non-finite element replaced by 0 (which only outputs that
    /// must be NaN can see), and that replaced dO.
    func reference(score: ((_ s: Double, _ b: Int, _ h: Int, _ q: Int, _ kv: Int) -> Double)? = nil)
        throws -> (attention: ReferenceAttention, dO: [Double]) {
        let finite = try NonFiniteProblem.finite(tensors())
        return (ReferenceAttention(query: finite.q, key: finite.k, value: finite.v, score: score, keep: keep),
                finite.dO.floats().map { Double($0) })
    }

    private static func finite(_ t: (q: Tensor, k: Tensor, v: Tensor, dO: Tensor)) throws
        -> (q: Tensor, k: Tensor, v: Tensor, dO: Tensor) {
        func zeroed(_ tensor: Tensor) throws -> Tensor {
            try Tensor(tensor.floats().map { $0.isFinite ? $0 : 0 }, shape: tensor.shape, dtype: tensor.dtype)
        }
        return (try zeroed(t.q), try zeroed(t.k), try zeroed(t.v), try zeroed(t.dO))
    }

    /// Per row of `values` (rows of `columns`), whether it holds a non-finite value once rounded to `dtype`.
    private static func badRows(_ values: [Float], columns: Int, dtype: DType) throws -> [Bool] {
        let rounded = try Tensor(values, shape: [values.count], dtype: dtype).floats()
        return (0..<values.count / columns).map { row in
            rounded[row * columns..<(row + 1) * columns].contains { !$0.isFinite }
        }
    }

    private func keepsAny(_ b: Int, _ h: Int, _ i: Int) -> Bool { (0..<shape.skv).contains { keep(b, h, i, $0) } }

    /// Per query row `[B, Hq, Sq]`: whether forward must report it NaN.
    func poisonedForwardRows() throws -> [Bool] {
        let s = shape
        let badQueries = try Self.badRows(q, columns: s.d, dtype: dtype)
        let badKeys = zip(
            try Self.badRows(k, columns: s.d, dtype: dtype), try Self.badRows(v, columns: s.dv, dtype: dtype)
        ).map { $0 || $1 }
        return (0..<s.b * s.hq * s.sq).map { row in
            let (b, h, i) = (row / s.sq / s.hq, row / s.sq % s.hq, row % s.sq)
            let firstKey = (b * s.hkv + h / (s.hq / s.hkv)) * s.skv
            return keepsAny(b, h, i)
                && (badQueries[row] || (0..<s.skv).contains { keep(b, h, i, $0) && badKeys[firstKey + $0] })
        }
    }

    /// Per query row: whether backward must report dQ NaN (dO is Float32, taken as given).
    func poisonedBackwardRows() throws -> [Bool] {
        let s = shape
        let badGradients = try Self.badRows(dO, columns: s.dv, dtype: .float32)
        return zip(try poisonedForwardRows(), 0...).map { forward, row in
            forward || (badGradients[row] && keepsAny(row / s.sq / s.hq, row / s.sq % s.hq, row % s.sq))
        }
    }

    /// Per key row `[B, Hkv, Skv]`: whether backward must report dK and dV NaN.
    func poisonedKeys() throws -> [Bool] {
        let s = shape
        let rows = try poisonedBackwardRows()
        return (0..<s.b * s.hkv * s.skv).map { key in
            let (b, kvh, j) = (key / s.skv / s.hkv, key / s.skv % s.hkv, key % s.skv)
            let group = s.hq / s.hkv
            return (kvh * group..<(kvh + 1) * group).contains { h in
                (0..<s.sq).contains { i in rows[(b * s.hq + h) * s.sq + i] && keep(b, h, i, j) }
            }
        }
    }
}

/// Checks that exactly the `poisoned` rows of `got` (rows of `columns`) are NaN, entirely, and that the others
/// are within `tolerance` of `want` by ‖got − want‖ / ‖want‖ (NaN anywhere fails it).
func expectRows(_ got: [Float], _ want: [Double], columns: Int, poisoned: [Bool], tolerance: Double,
                _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
    var (kept, reference) = ([Float](), [Double]())
    for (row, isPoisoned) in poisoned.enumerated() {
        let values = got[row * columns..<(row + 1) * columns]
        if isPoisoned {
            #expect(values.allSatisfy { $0.isNaN }, "\(label): row \(row) must be NaN", sourceLocation: sourceLocation)
        } else {
            // Infinite references (LSE −∞ of rows that keep nothing) must be matched exactly.
            for (x, y) in zip(values, want[row * columns..<(row + 1) * columns]) {
                if y.isFinite {
                    kept.append(x)
                    reference.append(y)
                } else {
                    #expect(Double(x) == y, "\(label): row \(row) is \(x), expected \(y)", sourceLocation: sourceLocation)
                }
            }
        }
    }
    let error = relativeError(kept, reference)
    #expect(error < tolerance, "\(label): relative error \(error)", sourceLocation: sourceLocation)
}
