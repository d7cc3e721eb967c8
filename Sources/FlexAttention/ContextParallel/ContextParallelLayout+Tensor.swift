/// Host tensors cut into shards and put back together along the sequence axis (axis 2 of `[B, H, S, D]` or
/// `[B, H, S]`), as the layout deals rows: for preparing inputs and checking results.
extension ContextParallelLayout {
    /// `rank`'s rows of `tensor`, its two chunks one after the other, as a new tensor of the same dtype.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` when `tensor` has fewer than 3 axes or its length does
    ///   not split into `2 × worldSize` chunks, or `rank` is not a rank of `worldSize`.
    public func shard(_ tensor: Tensor, rank: Int, worldSize: Int) throws -> Tensor {
        let length = try Self.checkedLength(tensor.shape, worldSize: worldSize, rank: rank)
        var shape = tensor.shape
        shape[2] = length / worldSize
        let shard = try Tensor(zeros: shape, dtype: tensor.dtype)
        let chunk = length / (2 * worldSize)
        for (index, rows) in positions(rank: rank, worldSize: worldSize, length: length).enumerated() {
            try shard.narrowed(axis: 2, range: index * chunk..<(index + 1) * chunk)
                .copy(from: tensor.narrowed(axis: 2, range: rows))
        }
        return shard
    }

    /// The whole tensor from every rank's shard (`shards[rank]`), rows back in sequence order.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for no shards, or shards of different shapes or dtypes.
    public func gather(_ shards: [Tensor]) throws -> Tensor {
        guard let first = shards.first, first.shape.count >= 3,
              shards.allSatisfy({ $0.shape == first.shape && $0.dtype == first.dtype }), first.shape[2] % 2 == 0
        else {
            throw FlexAttentionError.invalidArgument(
                "gathering needs shards of one shape and dtype with an even length on axis 2, not \(shards.map(\.shape))")
        }
        var shape = first.shape
        shape[2] *= shards.count
        let whole = try Tensor(zeros: shape, dtype: first.dtype)
        let chunk = first.shape[2] / 2
        for (rank, shard) in shards.enumerated() {
            for (index, rows) in positions(rank: rank, worldSize: shards.count, length: shape[2]).enumerated() {
                try whole.narrowed(axis: 2, range: rows)
                    .copy(from: shard.narrowed(axis: 2, range: index * chunk..<(index + 1) * chunk))
            }
        }
        return whole
    }

    private static func checkedLength(_ shape: [Int], worldSize: Int, rank: Int) throws -> Int {
        guard shape.count >= 3, worldSize > 0, (0..<worldSize).contains(rank), shape[2] % (2 * worldSize) == 0 else {
            throw FlexAttentionError.invalidArgument(
                "cannot take rank \(rank) of \(worldSize)'s shard of a tensor of shape \(shape): axis 2 must split into"
                    + " \(2 * max(worldSize, 1)) chunks")
        }
        return shape[2]
    }
}
