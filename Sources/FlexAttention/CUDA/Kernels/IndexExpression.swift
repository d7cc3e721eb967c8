import Glibc

/// A score or mask expression over the attention indices: its CUDA C++ text, the run-time values it reads, and a
/// Swift evaluation of the same function to check the GPU against.
///
/// In the CUDA text, `b`, `h`, `q`, `kv` are `int` indices, `score` is the `float` score, `ints[i]` and
/// `floats[i]` are constants and `t0`, `t1`, … are `int` tables indexed by index expressions. Constants and
/// tables are kernel arguments, never part of the source: new values reuse the compiled kernel.
///
/// Until the mods IR lands (branch `mods`), ``samples`` holds hand-written expressions; the IR's CUDA emitter will
/// produce values of this type.
public struct IndexExpression: Sendable {
    public enum Kind: String, Sendable {
        /// Yields a `bool`: keep the score or not (the kernel writes 1 or 0).
        case mask
        /// Yields the modified `float` score.
        case score
    }

    /// Identifier-safe name, part of the kernel name.
    public var name: String
    public var kind: Kind
    public var cuda: String
    public var integerConstants: [Int32]
    public var floatConstants: [Float]
    /// `int` tables; the CUDA text reads table `i` as `t<i>`.
    public var tables: [[Int32]]
    /// The same function on the CPU: `(b, h, q, kv, score, expression) -> value`.
    public var evaluate: @Sendable (Int, Int, Int, Int, Float, IndexExpression) -> Float

    public init(
        name: String, kind: Kind, cuda: String, integerConstants: [Int32] = [], floatConstants: [Float] = [],
        tables: [[Int32]] = [], evaluate: @escaping @Sendable (Int, Int, Int, Int, Float, IndexExpression) -> Float
    ) {
        self.name = name
        self.kind = kind
        self.cuda = cuda
        self.integerConstants = integerConstants
        self.floatConstants = floatConstants
        self.tables = tables
        self.evaluate = evaluate
    }

    /// Expressions that cover the shapes of common mods: comparisons, a run-time window, a table lookup, score
    /// arithmetic and a transcendental. Tables are sized for sequences up to `length`.
    public static func samples(length: Int = 256) -> [IndexExpression] {
        let documents = (0..<length).map { Int32($0 / 37) }
        return [
            IndexExpression(name: "causal", kind: .mask, cuda: "q >= kv") { _, _, q, kv, _, _ in q >= kv ? 1 : 0 },
            IndexExpression(
                name: "sliding_window", kind: .mask, cuda: "q >= kv && q - kv < ints[0]", integerConstants: [48]
            ) { _, _, q, kv, _, e in q >= kv && q - kv < Int(e.integerConstants[0]) ? 1 : 0 },
            IndexExpression(name: "document", kind: .mask, cuda: "t0[q] == t0[kv]", tables: [documents]) {
                _, _, q, kv, _, e in e.tables[0][q] == e.tables[0][kv] ? 1 : 0
            },
            IndexExpression(
                name: "alibi", kind: .score, cuda: "score - floats[0] * (float)(h + 1) * (float)(q - kv)",
                floatConstants: [0.0625]
            ) { _, h, q, kv, score, e in score - e.floatConstants[0] * Float(h + 1) * Float(q - kv) },
            IndexExpression(
                name: "softcap", kind: .score, cuda: "floats[0] * tanhf(score / floats[0])", floatConstants: [20]
            ) { _, _, _, _, score, e in e.floatConstants[0] * tanhf(score / e.floatConstants[0]) },
        ]
    }
}
