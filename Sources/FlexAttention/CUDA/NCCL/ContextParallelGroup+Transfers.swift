/// The transfers the ring schedule queues. Addresses are device pointers on the local rank's GPU; counts are bytes
/// (sent as `ncclUint8`, so any element type travels). Every call is queued on `stream` and returns without
/// waiting. With several local ranks, all calls of one step go inside one ``group(_:)``.
extension ContextParallelGroup {
    /// Runs `body` between `ncclGroupStart` and `ncclGroupEnd`, so that the transfers it queues are matched and
    /// launched together. `ncclGroupEnd` is called even when `body` throws; the group is then broken, since the
    /// transfers queued before the error may be launched without their peers'.
    func group<T>(_ body: () throws -> T) throws -> T {
        try perform("ncclGroupStart", comm: nil) { api.ncclGroupStart() }
        let outcome = Result { try body() }
        let end = api.ncclGroupEnd()
        if case let .failure(error) = outcome {
            markBroken("an error inside ncclGroupStart/ncclGroupEnd left NCCL's state unknown: \(error)")
            throw error
        }
        try record(end, "ncclGroupEnd", comm: nil)
        return try outcome.get()
    }

    /// Sends `byteCount` bytes at `address` to global rank `peer` (`ncclSend`); `peer` posts the matching
    /// ``receive(address:byteCount:from:localIndex:on:)``.
    func send(address: UInt64, byteCount: Int, to peer: Int, localIndex: Int, on stream: CUDAStream) throws {
        try checkTransfer(addresses: [address], byteCount: byteCount, peer: peer, localIndex: localIndex, stream: stream)
        let communicator = communicator(localIndex)
        try perform("ncclSend(\(byteCount) bytes, rank \(ranks[localIndex]) to \(peer))", comm: communicator) {
            api.ncclSend(
                UnsafeRawPointer(bitPattern: UInt(address)), byteCount, NCCLAPI.byteType, Int32(peer), communicator,
                stream.handle)
        }
    }

    /// Receives `byteCount` bytes from global rank `peer` into `address` (`ncclRecv`).
    func receive(address: UInt64, byteCount: Int, from peer: Int, localIndex: Int, on stream: CUDAStream) throws {
        try checkTransfer(addresses: [address], byteCount: byteCount, peer: peer, localIndex: localIndex, stream: stream)
        let communicator = communicator(localIndex)
        try perform("ncclRecv(\(byteCount) bytes, rank \(ranks[localIndex]) from \(peer))", comm: communicator) {
            api.ncclRecv(
                UnsafeMutableRawPointer(bitPattern: UInt(address)), byteCount, NCCLAPI.byteType, Int32(peer),
                communicator, stream.handle)
        }
    }

    /// Gathers every rank's `byteCount` bytes at `address` into `destination`, which holds `worldSize × byteCount`
    /// bytes in rank order (`ncclAllGather`).
    func allGather(
        address: UInt64, into destination: UInt64, byteCount: Int, localIndex: Int, on stream: CUDAStream
    ) throws {
        try checkTransfer(
            addresses: [address, destination], byteCount: byteCount, peer: nil, localIndex: localIndex, stream: stream)
        guard !byteCount.multipliedReportingOverflow(by: worldSize).overflow else {
            throw NCCLError.invalidArgument("\(byteCount) bytes from each of \(worldSize) ranks overflow Int")
        }
        let communicator = communicator(localIndex)
        try perform("ncclAllGather(\(byteCount) bytes per rank, rank \(ranks[localIndex]))", comm: communicator) {
            api.ncclAllGather(
                UnsafeRawPointer(bitPattern: UInt(address)), UnsafeMutableRawPointer(bitPattern: UInt(destination)),
                byteCount, NCCLAPI.byteType, communicator, stream.handle)
        }
    }

    /// What NCCL would misuse rather than reject: a local index or peer out of range, a stream on another GPU, a
    /// null address for a non-empty transfer.
    private func checkTransfer(
        addresses: [UInt64], byteCount: Int, peer: Int?, localIndex: Int, stream: CUDAStream
    ) throws {
        guard ranks.indices.contains(localIndex) else {
            throw NCCLError.invalidArgument(
                "local index \(localIndex) is outside 0..<\(ranks.count), the ranks this process drives")
        }
        if let peer, !(0..<worldSize).contains(peer) {
            throw NCCLError.invalidArgument("peer rank \(peer) is outside 0..<\(worldSize) (the world size)")
        }
        guard stream.device === devices[localIndex] else {
            throw NCCLError.invalidArgument(
                "the stream is on device \(stream.device.ordinal), but rank \(ranks[localIndex]) runs on device "
                    + "\(devices[localIndex].ordinal)")
        }
        guard byteCount >= 0 else { throw NCCLError.invalidArgument("byte count \(byteCount) is negative") }
        guard byteCount == 0 || !addresses.contains(0) else {
            throw NCCLError.invalidArgument("a transfer of \(byteCount) bytes has a null device address")
        }
    }
}
