/// New values for a score mod's Float tables from device memory: what a training step that keeps learnable tables on
/// the GPU needs between steps, without a trip through the host.
extension AttentionPlan {
    /// Replaces the values of some of the score mod's Float tables with `tables`' (by table name), as device-to-device
    /// copies queued on `stream`: calls queued on `stream` after this one (and graphs launched on it that were
    /// captured from this plan) read the new values. Nothing waits, so the copies may be captured in a ``CUDAGraph``
    /// too. Tables not named keep their values; Int tables and constants cannot change this way
    /// (``updateScoreMod(_:on:)`` replaces everything from the host).
    ///
    /// A Float table's values never decide which blocks are skipped or whether an index is in bounds, so no check of
    /// the new values is needed. Work on other streams that reads the plan must be ordered by the caller, and each
    /// source tensor must stay allocated until the copies have run.
    /// - Parameters:
    ///   - tables: by table name, contiguous Float32 tensors of the tables' shapes, on the plan's device.
    ///   - stream: where the copies are queued; on the plan's device.
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a name that is not one of the score mod's Float tables,
    ///   or a tensor of another shape, dtype, layout or device; ``CUDAError`` for a stream of another device. Nothing
    ///   is queued then.
    public func updateScoreModTables(_ tables: [String: DeviceTensor], on stream: CUDAStream) throws {
        try check(stream: stream)
        let slots = mods.scoreArguments?.tableSlots ?? []
        var copies: [(slot: Int, values: DeviceTensor)] = []
        for (name, values) in tables.sorted(by: { $0.key < $1.key }) {
            guard let slot = slots.firstIndex(where: { $0.name == name && $0.elementType == .float }) else {
                let floats = slots.filter { $0.elementType == .float }.map(\.name)
                throw FlexAttentionError.invalidArgument(
                    "\(name) is not a Float table of the plan's score mod (those are \(floats))")
            }
            try check(values, named: "table \(name)", shape: slots[slot].shape, dtype: .float32, contiguous: true)
            copies.append((slot, values))
        }
        guard let arguments = mods.scoreArguments else { return }  // no tables were given
        CUDAGraph.retainIfCapturing([self as any Sendable] + copies.map { $0.values.buffer as any Sendable })
        for (slot, values) in copies { try arguments.copyTable(slot, from: values, stream: stream) }
    }
}
