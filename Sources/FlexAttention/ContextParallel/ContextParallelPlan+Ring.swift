/// The ring itself, shared by the forward and backward passes: buffers, the order of computation and communication,
/// and the events that tie the two streams of each rank together.
///
/// Each local rank computes on the caller's stream and communicates on the plan's stream for it. Keys and values of
/// step `s` arrive in slot `s % 2`, received in the phase queued after step `s − 2` computed (the phase after the
/// start for step 1), so a transfer overlaps the step before it. In the backward pass that phase also sends the
/// key/value gradients of step `s − 2` back to their owner, who adds them to its Float32 sums on its communication
/// stream, in step order.
extension ContextParallelPlan {
    /// One local rank's buffers and events for one pass over one group of heads.
    final class RingRank {
        let local: Int
        let rank: Int
        let stream: CUDAStream
        let communication: CUDAStream
        /// Keys and values received, one slot per step parity.
        let received: [DeviceBuffer]
        /// This rank's own rows, packed for the rank they go to next.
        let packed: DeviceBuffer
        /// Backward: key/value gradients of a step's source (Float32), one slot per step parity, and those received
        /// back from the ranks that used this rank's rows.
        let gradients: [DeviceBuffer]
        let gradientsReceived: DeviceBuffer?
        /// `started` on the caller's stream before anything; `computed[s]` after step `s`'s computation;
        /// `communicated[p + 1]` after the phase queued after step `p` (`communicated[N]`: all of them).
        let started: CUDAEvent
        let computed: [CUDAEvent]
        let communicated: [CUDAEvent]

        init(plan: ContextParallelPlan, local: Int, stream: CUDAStream, backward: Bool) throws {
            let rank = plan.group.ranks[local]
            let device = stream.device
            let elements = (1..<max(plan.schedule.worldSize, 1)).map { step in
                max(plan.transfer(rank: rank, step: step).elements,
                    plan.transfer(rank: plan.schedule.peers(rank: rank, step: step).destination, step: step).elements)
            }.max() ?? 0
            let bytes = max(1, elements) * plan.shape.dtype.byteSize
            func allocate(_ bytes: Int) throws -> DeviceBuffer { try DeviceBuffer(device: device, byteCount: bytes, stream: stream) }
            (self.local, self.rank, self.stream, communication) = (local, rank, stream, plan.communication[local])
            received = try [allocate(bytes), allocate(bytes)]
            packed = try allocate(bytes)
            gradients = backward ? try [allocate(max(1, elements) * 4), allocate(max(1, elements) * 4)] : []
            gradientsReceived = backward ? try allocate(max(1, elements) * 4) : nil
            started = try CUDAEvent(device: device, timing: false)
            computed = try (0..<plan.schedule.worldSize).map { _ in try CUDAEvent(device: device, timing: false) }
            communicated = try (0...plan.schedule.worldSize).map { _ in try CUDAEvent(device: device, timing: false) }
        }
    }

    /// What moves at `step` into `rank` (its keys and values), for one group of heads.
    func transfer(rank: Int, step: Int) -> ContextParallelTransfer {
        ContextParallelTransfer(
            keyRows: schedule.steps[rank][step].keyRows, batch: shape.batch, heads: shape.keyValueHeads / headGroups,
            headDim: shape.headDim, valueDim: shape.valueDim)
    }

    /// The key/value heads of `headGroup`, and its query heads.
    func heads(_ headGroup: Int) -> (keyValue: Range<Int>, query: Range<Int>) {
        let (kv, q) = (shape.keyValueHeads / headGroups, shape.queryHeads / headGroups)
        return (headGroup * kv..<(headGroup + 1) * kv, headGroup * q..<(headGroup + 1) * q)
    }

    /// The rows of a shard that hold its local chunk `chunk`, or (`within`) those rows of that chunk.
    func rows(chunk: Int, within: Range<Int>? = nil) -> Range<Int> {
        let start = chunk * schedule.chunkLength
        let part = within ?? 0..<schedule.chunkLength
        return start + part.lowerBound..<start + part.upperBound
    }

    /// Per source chunk, the keys and values `rank` reads at `step` (nil where it reads none): its own rows at step
    /// 0, else the slot they were received in.
    func keyValues(
        _ ring: RingRank, step: Int, inputs: ContextParallelInputs, headGroup: Int
    ) throws -> [(key: DeviceTensor, value: DeviceTensor)?] {
        let keyRows = schedule.steps[ring.rank][step].keyRows
        guard step > 0 else {
            return try (0..<2).map { chunk in
                guard !keyRows[chunk].isEmpty else { return nil }
                let rows = rows(chunk: chunk, within: keyRows[chunk])
                let heads = heads(headGroup).keyValue
                return (try inputs.key.slice(heads: heads, rows: rows), try inputs.value.slice(heads: heads, rows: rows))
            }
        }
        let layout = transfer(rank: ring.rank, step: step)
        let slot = ring.received[step % 2]
        return try (0..<2).map { chunk in
            guard let key = try layout.view(slot, dtype: shape.dtype, chunk: chunk, value: false),
                  let value = try layout.view(slot, dtype: shape.dtype, chunk: chunk, value: true) else { return nil }
            return (key, value)
        }
    }

    /// Queues every step of the ring for one group of heads: `compute(ring, step)` on each rank's stream, and the
    /// communication phases between them. With `returnGradients`, each phase also sends the gradients `compute`
    /// left in `ring.gradients[step % 2]` back to the step's source, and `addReturned(ring, step, layout)` adds those
    /// received (in `ring.gradientsReceived`) on the communication stream. Ends with each caller stream waiting for its
    /// communication stream.
    func runRing(
        _ rings: [RingRank], inputs: [ContextParallelInputs], headGroup: Int, returnGradients: Bool,
        compute: (RingRank, Int) throws -> Void,
        addReturned: (RingRank, Int, ContextParallelTransfer) throws -> Void = { _, _, _ in }
    ) throws {
        let worldSize = schedule.worldSize
        for ring in rings {  // the inputs and the buffers are ready once the caller's stream gets here
            try ring.started.record(on: ring.stream)
            try ring.communication.wait(for: ring.started)
        }
        /// The phase after step `after` (−1: the start): receives step `after + 2`, returns step `after`'s gradients.
        func phase(after: Int) throws {
            let receiving = after + 2 < worldSize && after + 2 > 0 ? after + 2 : nil
            let returning = returnGradients && after >= 1 ? after : nil
            for ring in rings {
                if after >= 0 { try ring.communication.wait(for: ring.computed[after]) }
                if let receiving {
                    let destination = schedule.peers(rank: ring.rank, step: receiving).destination
                    try pack(ring, for: destination, step: receiving, inputs: inputs[ring.local], headGroup: headGroup)
                }
            }
            try group.group {
                for ring in rings {
                    let local = ring.local
                    if let receiving {
                        let (source, destination) = schedule.peers(rank: ring.rank, step: receiving)
                        let sent = transfer(rank: destination, step: receiving).elements * shape.dtype.byteSize
                        if sent > 0 {
                            try group.send(address: ring.packed.address, byteCount: sent, to: destination,
                                           localIndex: local, on: ring.communication)
                        }
                        let received = transfer(rank: ring.rank, step: receiving).elements * shape.dtype.byteSize
                        if received > 0 {
                            try group.receive(address: ring.received[receiving % 2].address, byteCount: received,
                                              from: source, localIndex: local, on: ring.communication)
                        }
                    }
                    if let returning, let into = ring.gradientsReceived {
                        let (source, destination) = schedule.peers(rank: ring.rank, step: returning)
                        let sent = transfer(rank: ring.rank, step: returning).elements * 4
                        if sent > 0 {
                            try group.send(address: ring.gradients[returning % 2].address, byteCount: sent, to: source,
                                           localIndex: local, on: ring.communication)
                        }
                        let received = transfer(rank: destination, step: returning).elements * 4
                        if received > 0 {
                            try group.receive(address: into.address, byteCount: received, from: destination,
                                              localIndex: local, on: ring.communication)
                        }
                    }
                }
            }
            for ring in rings {
                if let returning {
                    let destination = schedule.peers(rank: ring.rank, step: returning).destination
                    let layout = transfer(rank: destination, step: returning)
                    if layout.elements > 0 { try addReturned(ring, returning, layout) }
                }
                try ring.communicated[after + 1].record(on: ring.communication)
            }
        }

        do {
            if worldSize > 1 { try phase(after: -1) }
            for step in 0..<worldSize {
                for ring in rings {
                    // Step `step`'s rows arrived, and (backward) its gradient slot was sent, in the phase after step − 2.
                    if step >= 1 { try ring.stream.wait(for: ring.communicated[max(step - 2, -1) + 1]) }
                    if !schedule.steps[ring.rank][step].isEmpty { try compute(ring, step) }
                    try ring.computed[step].record(on: ring.stream)
                }
                if step + 2 < worldSize || (returnGradients && step >= 1) { try phase(after: step) }
            }
        } catch {
            // Transfers already queued wait for partners that will never come (here, or on other ranks whose calls
            // go on): only aborting the communicators releases the streams. The group is unusable afterwards.
            if worldSize > 1 { group.abort() }
            throw error
        }
        for ring in rings {
            try ring.communicated[worldSize].record(on: ring.communication)
            try ring.stream.wait(for: ring.communicated[worldSize])
        }
    }

    /// Packs this rank's rows that `destination` reads at `step` into `ring.packed`, on the communication stream.
    private func pack(
        _ ring: RingRank, for destination: Int, step: Int, inputs: ContextParallelInputs, headGroup: Int
    ) throws {
        let layout = transfer(rank: destination, step: step)
        let heads = heads(headGroup).keyValue
        for chunk in 0..<2 {
            let keyRows = layout.keyRows[chunk]
            guard !keyRows.isEmpty else { continue }
            let rows = rows(chunk: chunk, within: keyRows)
            for (source, isValue) in [(inputs.key, false), (inputs.value, true)] {
                guard let target = try layout.view(ring.packed, dtype: shape.dtype, chunk: chunk, value: isValue) else {
                    continue
                }
                try target.accumulate(source.slice(heads: heads, rows: rows), adding: false, on: ring.communication)
            }
        }
    }
}
