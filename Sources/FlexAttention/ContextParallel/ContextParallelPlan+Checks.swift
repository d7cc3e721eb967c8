/// What every call checks before it queues anything.
extension ContextParallelPlan {
    /// Checks one shard and one stream per local rank, on that rank's device, of the shard's shape and dtype.
    func check(_ inputs: [ContextParallelInputs], streams: [CUDAStream]) throws {
        guard inputs.count == group.ranks.count, streams.count == group.ranks.count else {
            throw FlexAttentionError.invalidArgument(
                "this process drives \(group.ranks.count) rank(s) (\(group.ranks)); give as many shards and streams,"
                    + " not \(inputs.count) and \(streams.count)")
        }
        for (local, (input, stream)) in zip(inputs, streams).enumerated() {
            let device = group.devices[local]
            guard stream.device === device else {
                throw CUDAError.invalidArgument(
                    "rank \(group.ranks[local])'s stream is on CUDA device \(stream.device.ordinal), the rank on"
                        + " \(device.ordinal)")
            }
            for (tensor, name) in [(input.query, "query"), (input.key, "key"), (input.value, "value")] {
                try tensor.check(named: "rank \(group.ranks[local])'s \(name)", device: device)
            }
            let given = try AttentionShape(query: input.query, key: input.key, value: input.value)
            guard given == shardShape else {
                throw FlexAttentionError.invalidArgument(
                    "rank \(group.ranks[local])'s shard forms \(given); each rank holds \(shardShape)")
            }
        }
    }
}
