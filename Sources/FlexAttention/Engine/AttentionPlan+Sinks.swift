/// Attention sinks on a plan: new logits in place, and the check of a caller's sink-gradient tensor.
extension AttentionPlan {
    /// Replaces the sinks' logits with `sinks`, without recompiling: calls queued on `stream` after this one (and
    /// graphs launched on it that were captured from this plan) read the new values, in their forward and backward
    /// passes alike. A training step updating learnable sinks calls it between steps.
    ///
    /// The values are copied from host memory on `stream` (a pageable copy, staged before this returns, which graph
    /// capture does not allow: update between replays, not inside a capture). Work on other streams that reads the
    /// plan must be ordered by the caller. ``options`` keeps the sinks the plan was made with.
    /// - Parameters:
    ///   - sinks: one logit per query head, finite or −∞ (no sink for that head).
    ///   - stream: where the copy is queued; on the plan's device.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` when the plan was made without sinks (they change which
    ///   kernels run: make a plan with ``AttentionOptions/sinks``), for a count other than the query heads' or a
    ///   logit that is NaN or +∞; ``CUDAError`` for a stream of another device. Nothing is copied then.
    public func updateSinks(_ sinks: [Float], on stream: CUDAStream) throws {
        guard let program = self.sinks else {
            throw FlexAttentionError.invalidArgument(
                "this plan was made without attention sinks; make one with options.sinks")
        }
        try AttentionSinks.check(sinks, queryHeads: shape.queryHeads)
        try check(stream: stream)
        try program.update(sinks, stream: stream)
    }

    /// Checks a caller's tensor for the sinks' gradient: a contiguous Float32 `[Hq]` one when the plan has sinks,
    /// none when it has not.
    func check(sinkGradient: DeviceTensor?) throws {
        switch (sinks, sinkGradient) {
        case (nil, nil):
            return
        case (nil, _?):
            throw FlexAttentionError.invalidArgument("a sink gradient was given to a plan without attention sinks")
        case (_?, nil):
            throw FlexAttentionError.invalidArgument("this plan has attention sinks: give a Float32 [Hq] sink gradient")
        case let (_?, tensor?):
            try check(tensor, named: "sink gradient", shape: [shape.queryHeads], dtype: .float32, contiguous: true)
        }
    }
}
