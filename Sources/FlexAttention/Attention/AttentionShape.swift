/// The validated sizes of one attention problem: queries `[B, Hq, Sq, D]`, keys `[B, Hkv, Skv, D]`,
/// values `[B, Hkv, Skv, Dv]`.
public struct AttentionShape: Sendable, Hashable {
    /// `B`, the batch size.
    public let batch: Int
    /// `Hq`, the query heads.
    public let queryHeads: Int
    /// `Hkv`, the key/value heads; `Hq` is a multiple of it (GQA/MQA).
    public let keyValueHeads: Int
    /// `Sq`, the queries per sequence.
    public let queryLength: Int
    /// `Skv`, the keys per sequence.
    public let keyLength: Int
    /// `D`, the head dim of queries and keys.
    public let headDim: Int
    /// `Dv`, the head dim of values and of the output.
    public let valueDim: Int
    /// The element type shared by all inputs.
    public let dtype: DType

    /// Head dims the library supports, for D and Dv.
    public static let supportedHeadDims = 1...512

    /// Query heads that share one key/value head.
    public var groupSize: Int { queryHeads / keyValueHeads }

    /// A problem of these sizes, for building an ``AttentionPlan`` before any tensor exists.
    /// - Parameters:
    ///   - batch: `B`.
    ///   - queryHeads: `Hq`, a multiple of `keyValueHeads`.
    ///   - keyValueHeads: `Hkv`.
    ///   - queryLength: `Sq`.
    ///   - keyLength: `Skv`; `queryLength` when `nil`.
    ///   - headDim: `D`, of queries and keys.
    ///   - valueDim: `Dv`; `headDim` when `nil`.
    ///   - dtype: the element type of every input.
    /// - Throws: ``FlexAttentionError`` for a size that is not positive, heads that do not divide, or a head dim
    ///   outside ``supportedHeadDims``.
    public init(
        batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, keyLength: Int? = nil, headDim: Int,
        valueDim: Int? = nil, dtype: DType
    ) throws {
        let (skv, dv) = (keyLength ?? queryLength, valueDim ?? headDim)
        try self.init(
            shapes: [[batch, queryHeads, queryLength, headDim], [batch, keyValueHeads, skv, headDim],
                     [batch, keyValueHeads, skv, dv]],
            dtypes: [dtype, dtype, dtype])
    }

    /// Checks that the three tensors form an attention problem.
    /// - Throws: ``FlexAttentionError`` naming the first tensor and dimension that is wrong.
    public init(query: Tensor, key: Tensor, value: Tensor) throws {
        try self.init(shapes: [query.shape, key.shape, value.shape], dtypes: [query.dtype, key.dtype, value.dtype])
    }

    /// Checks that the three device tensors form an attention problem on one device.
    /// - Throws: ``FlexAttentionError`` naming the first tensor and dimension that is wrong.
    public init(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor) throws {
        for (name, tensor) in [("key", key), ("value", value)] where tensor.buffer.device !== query.buffer.device {
            throw FlexAttentionError.invalidArgument(
                "\(name) is on CUDA device \(tensor.buffer.device.ordinal), query on \(query.buffer.device.ordinal)")
        }
        try self.init(shapes: [query.shape, key.shape, value.shape], dtypes: [query.dtype, key.dtype, value.dtype])
    }

    /// Checks shapes and dtypes of query, key and value, in that order.
    init(shapes: [[Int]], dtypes: [DType]) throws {
        let names = ["query", "key", "value"]
        for (name, shape) in zip(names, shapes) where shape.count != 4 {
            throw FlexAttentionError.wrongRank(tensor: name, expected: 4, actual: shape.count)
        }
        // Batch and lengths may be 0 (no queries, an empty KV cache): the result is defined. Heads and head dims may
        // not: every query head needs its key/value head.
        for (name, shape) in zip(names, shapes) where shape.contains(where: { $0 < 0 }) || shape[1] == 0 || shape[3] == 0 {
            throw FlexAttentionError.nonPositiveDimension(tensor: name, shape: shape)
        }
        for (name, dtype) in zip(names, dtypes).dropFirst() where dtype != dtypes[0] {
            throw FlexAttentionError.mixedDTypes(expected: dtypes[0], actual: dtype, tensor: name)
        }
        let (query, key, value) = (shapes[0], shapes[1], shapes[2])
        let (b, hq, sq, d) = (query[0], query[1], query[2], query[3])
        let (hkv, skv, dv) = (key[1], key[2], value[3])
        let expectations: [(String, Int, Int, String)] = [
            ("batch", b, key[0], "key"), ("batch", b, value[0], "value"),
            ("head dim", d, key[3], "key"), ("heads", hkv, value[1], "value"),
            ("sequence length", skv, value[2], "value"),
        ]
        for (name, expected, actual, tensor) in expectations where expected != actual {
            throw FlexAttentionError.mismatchedDimension(name: name, expected: expected, actual: actual, tensor: tensor)
        }
        guard hq % hkv == 0 else { throw FlexAttentionError.headsNotDivisible(queryHeads: hq, keyValueHeads: hkv) }
        for dim in [d, dv] where !Self.supportedHeadDims.contains(dim) {
            throw FlexAttentionError.unsupportedHeadDimension(dim, supported: Self.supportedHeadDims)
        }
        (batch, queryHeads, keyValueHeads, queryLength, keyLength) = (b, hq, hkv, sq, skv)
        (headDim, valueDim, dtype) = (d, dv, dtypes[0])
    }

    /// The scale to use: `scale` when given and finite, `1/√D` when `nil`.
    func resolvedScale(_ scale: Float?) throws -> Float {
        guard let scale else { return 1 / Float(headDim).squareRoot() }
        guard scale.isFinite else { throw FlexAttentionError.invalidScale(scale) }
        return scale
    }

    /// Checks that `tensor` has exactly `expected` as its shape.
    static func require(_ tensor: Tensor, named name: String, shape expected: [Int]) throws {
        try require(shape: tensor.shape, named: name, expected: expected)
    }

    /// Checks that a tensor named `name` of shape `shape` has exactly `expected` as its shape.
    static func require(shape: [Int], named name: String, expected: [Int]) throws {
        guard shape.count == expected.count else {
            throw FlexAttentionError.wrongRank(tensor: name, expected: expected.count, actual: shape.count)
        }
        guard shape == expected else {
            throw FlexAttentionError.invalidArgument("\(name) has shape \(shape), expected \(expected)")
        }
    }

    /// Whether there is nothing to attend: no batch, no queries or no keys. Every row then keeps nothing: O = 0,
    /// LSE = −∞, and every gradient is 0.
    public var isEmpty: Bool { batch == 0 || queryLength == 0 || keyLength == 0 }

    /// `O`'s shape, `[B, Hq, Sq, Dv]`.
    package var outputShape: [Int] { [batch, queryHeads, queryLength, valueDim] }
    /// The log-sum-exp's shape, `[B, Hq, Sq]`.
    package var logSumExpShape: [Int] { [batch, queryHeads, queryLength] }
    /// Q's (and dQ's) shape.
    package var queryShape: [Int] { [batch, queryHeads, queryLength, headDim] }
    /// K's (and dK's) shape.
    package var keyShape: [Int] { [batch, keyValueHeads, keyLength, headDim] }
    /// V's (and dV's) shape.
    package var valueShape: [Int] { [batch, keyValueHeads, keyLength, valueDim] }
}

extension AttentionShape: CustomStringConvertible {
    /// The sizes on one line, as `B=… Hq=… Hkv=… Sq=… Skv=… D=… Dv=… dtype`.
    public var description: String {
        "B=\(batch) Hq=\(queryHeads) Hkv=\(keyValueHeads) Sq=\(queryLength) Skv=\(keyLength) D=\(headDim) Dv=\(valueDim) \(dtype)"
    }
}
