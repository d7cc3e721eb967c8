/// The usual masks. Each documents its textual form; indices are absolute, so top-left alignment is the default
/// and bottom-right alignment is written in the mask.
extension MaskMod {
    /// Each query sees itself and the keys before it: `q >= kv`.
    public static let causal = MaskMod { _, _, q, kv in q >= kv }

    /// Causal with the last query aligned to the last key, as when new queries follow a cache of keys:
    /// `q + kv_len - q_len >= kv`.
    public static let causalBottomRight = MaskMod { _, _, q, kv in q + ModInt.keyLength - ModInt.queryLength >= kv }

    /// Causal, limited to the `size` most recent keys (the query's own included): `q >= kv && q - kv < size`.
    public static func slidingWindow(_ size: Int) -> MaskMod {
        MaskMod { _, _, q, kv in q >= kv && q - kv < ModInt(size) }
    }

    /// The keys within `radius` positions on either side: `abs(q - kv) <= radius`.
    public static func symmetricWindow(radius: Int) -> MaskMod {
        MaskMod { _, _, q, kv in abs(q - kv) <= ModInt(radius) }
    }

    /// Attention within consecutive chunks of `size` positions: `q / size == kv / size`.
    public static func chunked(_ size: Int) -> MaskMod {
        MaskMod { _, _, q, kv in q / ModInt(size) == kv / ModInt(size) }
    }

    /// Causal, with a bidirectional prefix of `length` keys every query sees: `kv < length || q >= kv`.
    public static func prefixLM(length: Int) -> MaskMod {
        MaskMod { _, _, q, kv in kv < ModInt(length) || q >= kv }
    }

    /// Prefix LM with one prefix length per batch, from the table `prefix_len` (or `tableName`) of shape `[B]`:
    /// `kv < prefix_len[b] || q >= kv`.
    /// - Throws: ``ModError`` when `lengths` is empty or a value does not fit in Int32.
    public static func prefixLM(lengths: [some BinaryInteger], tableName: String = "prefix_len") throws -> MaskMod {
        let table = try IntTable(name: tableName, values: try int32(lengths, table: tableName), shape: [lengths.count])
        return MaskMod { b, _, q, kv in kv < table[b] || q >= kv }
    }

    /// Packed sequences: a query sees only the keys of its own document, from the table `doc` (or `tableName`) of
    /// one document id per position: `doc[q] == doc[kv]`. Two masks combined with `&&` need distinct names for
    /// tables that differ.
    /// - Throws: ``ModError`` when `ids` is empty or a value does not fit in Int32.
    public static func document(ids: [some BinaryInteger], tableName: String = "doc") throws -> MaskMod {
        let doc = try documentTable(ids, name: tableName)
        return MaskMod { _, _, q, kv in doc[q] == doc[kv] }
    }

    /// Packed sequences given by their start offsets (`[0, l₀, l₀ + l₁, …, total]`): the same mask as
    /// ``document(ids:tableName:)``, with the ids table made from the offsets.
    /// - Throws: ``ModError`` when the offsets do not start at 0 or do not increase.
    public static func document(offsets: [Int], tableName: String = "doc") throws -> MaskMod {
        try document(ids: documentIDs(offsets: offsets), tableName: tableName)
    }

    /// Packed sequences, causal within each: `doc[q] == doc[kv] && q >= kv`, the table named `doc` (or
    /// `tableName`).
    /// - Throws: ``ModError`` when `ids` is empty or a value does not fit in Int32.
    public static func documentCausal(ids: [some BinaryInteger], tableName: String = "doc") throws -> MaskMod {
        let doc = try documentTable(ids, name: tableName)
        return MaskMod { _, _, q, kv in doc[q] == doc[kv] && q >= kv }
    }

    /// Causal, seeing `size` keys spaced `dilation` apart (the query's own included):
    /// `q >= kv && q - kv < size * dilation && (q - kv) % dilation == 0`.
    public static func dilatedWindow(size: Int, dilation: Int) -> MaskMod {
        MaskMod { _, _, q, kv in
            q >= kv && q - kv < ModInt(size) * ModInt(dilation) && (q - kv) % ModInt(dilation) == 0
        }
    }

    /// The document id of each position, from start offsets.
    static func documentIDs(offsets: [Int]) throws -> [Int] {
        guard offsets.first == 0, offsets.count >= 2, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ModError.invalidTable("doc", reason: "offsets must start at 0 and increase, got \(offsets.prefix(8))")
        }
        return zip(offsets, offsets.dropFirst()).enumerated().flatMap { document, bounds in
            [Int](repeating: document, count: bounds.1 - bounds.0)
        }
    }

    private static func documentTable(_ ids: [some BinaryInteger], name: String) throws -> IntTable {
        try IntTable(name: name, values: try int32(ids, table: name), shape: [ids.count])
    }
}

/// `values` as Int32, or an error naming `table`.
func int32(_ values: [some BinaryInteger], table: String) throws -> [Int32] {
    try values.map {
        guard let value = Int32(exactly: $0) else { throw ModError.invalidTable(table, reason: "\($0) does not fit in Int32") }
        return value
    }
}
