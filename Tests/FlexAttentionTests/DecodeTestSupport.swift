@testable import FlexAttention
import Foundation

/// A decoding problem built for tests: random logical keys and values `[B, Hkv, capacity, D]`, a cache holding
/// them (contiguous, or paged with pages assigned in shuffled order), NaN in every slot past each sequence's
/// length, and the Float64 reference computed sequence by sequence from the logical tensors.
struct DecodeCase {
    let query: Tensor
    let cache: KVCache
    let logicalKeys: Tensor
    let logicalValues: Tensor
    let lengths: [Int]

    /// - Parameter pageSize: nil for a contiguous cache.
    init(
        batch: Int, queryHeads: Int, kvHeads: Int, queryLength: Int, lengths: [Int], capacity: Int, headDim: Int,
        valueDim: Int? = nil, pageSize: Int? = nil, dtype: DType = .float32, rng: inout SeededRandom
    ) throws {
        let dv = valueDim ?? headDim
        query = try randomTensor([batch, queryHeads, queryLength, headDim], dtype: dtype, rng: &rng)
        logicalKeys = try randomTensor([batch, kvHeads, capacity, headDim], dtype: dtype, rng: &rng)
        logicalValues = try randomTensor([batch, kvHeads, capacity, dv], dtype: dtype, rng: &rng)
        self.lengths = lengths
        guard let pageSize else {
            let keys = try Tensor(zeros: logicalKeys.shape, dtype: dtype, layout: .bshd)
            let values = try Tensor(zeros: logicalValues.shape, dtype: dtype, layout: .bshd)
            try keys.copy(from: logicalKeys)
            try values.copy(from: logicalValues)
            for (b, length) in lengths.enumerated() where length < capacity {
                try Self.poison(keys.narrowed(axis: 0, range: b..<b + 1).narrowed(axis: 2, range: length..<capacity))
                try Self.poison(values.narrowed(axis: 0, range: b..<b + 1).narrowed(axis: 2, range: length..<capacity))
            }
            cache = try KVCache(keys: keys, values: values, lengths: lengths)
            return
        }
        let pagesPerSequence = (capacity + pageSize - 1) / pageSize
        let pageCount = batch * pagesPerSequence + 3  // spare pages, never used
        var order = Array(0..<pageCount)
        order.shuffle(using: &rng)
        let entries = (0..<batch * pagesPerSequence).map { Int32(order[$0]) }
        let table = try PageTable(
            entries: entries, batch: batch, maxPagesPerSequence: pagesPerSequence, pageCount: pageCount,
            pageSize: pageSize)
        let keyPages = try Tensor(zeros: [pageCount, pageSize, kvHeads, headDim], dtype: dtype)
        let valuePages = try Tensor(zeros: [pageCount, pageSize, kvHeads, dv], dtype: dtype)
        try Self.poison(keyPages)
        try Self.poison(valuePages)
        var filled = try KVCache(
            keyPages: keyPages, valuePages: valuePages, pageTable: table, lengths: [Int](repeating: 0, count: batch))
        // Fill to each length by appending the logical tokens, then trim the others' lengths back.
        let longest = lengths.max() ?? 0
        try filled.append(
            keys: logicalKeys.narrowed(axis: 2, range: 0..<longest), values: logicalValues.narrowed(axis: 2, range: 0..<longest))
        cache = try KVCache(keyPages: keyPages, valuePages: valuePages, pageTable: filled.pageTable ?? table, lengths: lengths)
        for (b, length) in lengths.enumerated() {
            for position in length..<longest {  // appended past this sequence's length: poison again
                let page = Int(table.page(sequence: b, position: position))
                let slot = position % pageSize
                try Self.poison(keyPages.narrowed(axis: 0, range: page..<page + 1).narrowed(axis: 1, range: slot..<slot + 1))
                try Self.poison(valuePages.narrowed(axis: 0, range: page..<page + 1).narrowed(axis: 1, range: slot..<slot + 1))
            }
        }
    }

    static func poison(_ view: Tensor) throws {
        try view.copy(from: Tensor([Float](repeating: .nan, count: view.shape.reduce(1, *)), shape: view.shape))
    }

    /// O and LSE in Float64 from the logical tensors, each sequence on its own with absolute positions.
    func expected(
        scale: Double? = nil, mask: MaskMod? = nil, scoreMod: ScoreMod? = nil, sinks: [Float]? = nil
    ) throws -> (o: [Double], lse: [Double]) {
        let (batch, sq) = (query.shape[0], query.shape[2])
        var o: [Double] = []
        var lse: [Double] = []
        for b in 0..<batch {
            let length = lengths[b]
            let start = length - sq
            let point = { (h: Int, i: Int, j: Int, s: Double) in
                ReferencePoint(b: b, h: h, q: start + i, kv: j, queryLength: length, keyLength: length, score: s)
            }
            var attention = ReferenceAttention(
                query: try query.narrowed(axis: 0, range: b..<b + 1),
                key: try logicalKeys.narrowed(axis: 0, range: b..<b + 1).narrowed(axis: 2, range: 0..<length),
                value: try logicalValues.narrowed(axis: 0, range: b..<b + 1).narrowed(axis: 2, range: 0..<length),
                scale: scale,
                score: scoreMod.map { mod in { s, _, h, i, j in FlexAttentionTests.reference(mod.expression.node, at: point(h, i, j, s)).real } },
                keep: { _, h, i, j in mask.map { FlexAttentionTests.reference($0.expression.node, at: point(h, i, j, 0)).bool } ?? true })
            attention.sinks = sinks?.map(Double.init)
            let result = attention.forward()
            o += result.o
            lse += result.lse
        }
        return (o, lse)
    }
}
