@testable import FlexAttention

/// A score-matrix grid for one (batch, head), evaluated through the compiled tile programs.
struct TileGrid {
    let batch: Int, head: Int, queries: Int, keys: Int

    /// `body` on a key-major tile over the whole grid whose scores are `initial(q, kv)`; returns the scores after.
    func run(initial: (Int, Int) -> Float, _ body: (ScoreTile) -> Void) -> [Float] {
        var values = [Float](repeating: 0, count: queries * keys)
        for kv in 0..<keys { for q in 0..<queries { values[kv * queries + q] = initial(q, kv) } }
        values.withUnsafeMutableBufferPointer { buffer in
            body(ScoreTile(values: buffer.baseAddress!, stride: queries, batch: batch, head: head, queries: 0..<queries, keys: 0..<keys))
        }
        return values
    }

    /// Whether the mask keeps each element, indexed `[kv * queries + q]`, through ``MaskTileEvaluator/mask(_:)``.
    func kept(_ mask: MaskMod) throws -> [Bool] {
        let evaluator = try MaskTileEvaluator(mask, queryLength: queries, keyLength: keys)
        return run(initial: { _, _ in 0 }) { evaluator.mask($0) }.map { $0 == 0 }
    }
}

/// The first query where `actual` and `expected` differ, for messages.
func firstMismatch<T: Equatable>(_ actual: [T], _ expected: [T], queries: Int) -> String? {
    guard let i = zip(actual, expected).enumerated().first(where: { $1.0 != $1.1 })?.offset else { return nil }
    return "q \(i % queries), kv \(i / queries): \(actual[i]) vs \(expected[i])"
}
