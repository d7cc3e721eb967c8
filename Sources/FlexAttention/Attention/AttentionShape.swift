/// The validated sizes of one attention problem: queries `[B, Hq, Sq, D]`, keys `[B, Hkv, Skv, D]`,
/// values `[B, Hkv, Skv, Dv]`.
public struct AttentionShape: Sendable, Hashable {
    public let batch: Int
    public let queryHeads: Int
    public let keyValueHeads: Int
    public let queryLength: Int
    public let keyLength: Int
    public let headDim: Int
    public let valueDim: Int
    /// The element type shared by all inputs.
    public let dtype: DType

    /// Head dims the library supports, for D and Dv.
    public static let supportedHeadDims = 1...512

    /// Query heads that share one key/value head.
    public var groupSize: Int { queryHeads / keyValueHeads }

    /// Checks that the three tensors form an attention problem.
    /// - Throws: ``FlexAttentionError`` naming the first tensor and dimension that is wrong.
    public init(query: Tensor, key: Tensor, value: Tensor) throws {
        for (name, tensor) in [("query", query), ("key", key), ("value", value)] where tensor.shape.count != 4 {
            throw FlexAttentionError.wrongRank(tensor: name, expected: 4, actual: tensor.shape.count)
        }
        for (name, tensor) in [("key", key), ("value", value)] where tensor.dtype != query.dtype {
            throw FlexAttentionError.mixedDTypes(expected: query.dtype, actual: tensor.dtype, tensor: name)
        }
        let (b, hq, sq, d) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (hkv, skv, dv) = (key.shape[1], key.shape[2], value.shape[3])
        let expectations: [(String, Int, Int, String)] = [
            ("batch", b, key.shape[0], "key"), ("batch", b, value.shape[0], "value"),
            ("head dim", d, key.shape[3], "key"), ("heads", hkv, value.shape[1], "value"),
            ("sequence length", skv, value.shape[2], "value"),
        ]
        for (name, expected, actual, tensor) in expectations where expected != actual {
            throw FlexAttentionError.mismatchedDimension(name: name, expected: expected, actual: actual, tensor: tensor)
        }
        guard hq % hkv == 0 else { throw FlexAttentionError.headsNotDivisible(queryHeads: hq, keyValueHeads: hkv) }
        for dim in [d, dv] where !Self.supportedHeadDims.contains(dim) {
            throw FlexAttentionError.unsupportedHeadDimension(dim, supported: Self.supportedHeadDims)
        }
        (batch, queryHeads, keyValueHeads, queryLength, keyLength) = (b, hq, hkv, sq, skv)
        (headDim, valueDim, dtype) = (d, dv, query.dtype)
    }

    /// The scale to use: `scale` when given and finite, `1/√D` when `nil`.
    func resolvedScale(_ scale: Float?) throws -> Float {
        guard let scale else { return 1 / Float(headDim).squareRoot() }
        guard scale.isFinite else { throw FlexAttentionError.invalidScale(scale) }
        return scale
    }

    /// Checks that `tensor` has exactly `expected` as its shape.
    static func require(_ tensor: Tensor, named name: String, shape expected: [Int]) throws {
        guard tensor.shape.count == expected.count else {
            throw FlexAttentionError.wrongRank(tensor: name, expected: expected.count, actual: tensor.shape.count)
        }
        guard tensor.shape == expected else {
            throw FlexAttentionError.invalidArgument("\(name) has shape \(tensor.shape), expected \(expected)")
        }
    }
}
