/// Copies and fills of evenly spaced rows, queued on a stream: what rearranging packed sequences on the device
/// needs (one call for a whole head's rows, or for a sequence's columns of a `[H, total]` tensor).
extension DeviceBuffer {
    /// Queues a copy of `rows` rows of `bytes` bytes from `source`, whose rows start at `sourceOffset` and lie
    /// `sourcePitch` bytes apart, into this buffer, whose rows start at `offset` and lie `pitch` bytes apart
    /// (`cuMemcpy2DAsync`, device to device). Both buffers must be on one device.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when a row reaches outside either buffer or a pitch is below
    ///   `bytes`; the driver's error when it refuses the copy.
    func copyRows(
        _ rows: Int, bytes: Int, from source: DeviceBuffer, sourceOffset: Int, sourcePitch: Int, toOffset offset: Int,
        pitch: Int, stream: CUDAStream
    ) throws {
        guard rows > 0, bytes > 0 else { return }
        guard sourcePitch >= bytes, pitch >= bytes, source.device === device else {
            throw CUDAError.invalidArgument(
                "cannot copy rows of \(bytes) bytes with pitches \(sourcePitch) and \(pitch) between these buffers")
        }
        try source.checkSpan(sourceOffset, rows, bytes, pitch: sourcePitch, "copy \(rows) rows from it")
        try checkSpan(offset, rows, bytes, pitch: pitch, "copy \(rows) rows into it")
        // CUDA_MEMCPY2D: sixteen 8-byte fields on 64-bit platforms (each memory type, a 4-byte enum, is padded by
        // the pointer after it). Only the device addresses, pitches and extent are set; X and Y offsets stay 0.
        let deviceMemory: UInt64 = 2  // CU_MEMORYTYPE_DEVICE
        var parameters = [UInt64](repeating: 0, count: 16)
        (parameters[2], parameters[4], parameters[6]) =
            (deviceMemory, source.address + UInt64(sourceOffset), UInt64(sourcePitch))
        (parameters[9], parameters[11], parameters[13]) = (deviceMemory, address + UInt64(offset), UInt64(pitch))
        (parameters[14], parameters[15]) = (UInt64(bytes), UInt64(rows))
        try device.bind()
        let api = device.api
        try parameters.withUnsafeBytes { parameters in
            try api.check(
                api.cuMemcpy2DAsync(parameters.baseAddress, stream.handle),
                "cuMemcpy2DAsync(\(rows) rows of \(bytes) bytes)")
        }
    }

    /// Queues setting `count` 32-bit words from byte `offset` (a multiple of 4) to `word`, on `stream`
    /// (`cuMemsetD32Async`): a fill with a value that is not one repeated byte, such as −∞ in Float32.
    func fill(word: UInt32, fromOffset offset: Int, count: Int, stream: CUDAStream) throws {
        try checkSpan(offset, 1, count * 4, pitch: count * 4, "fill \(count) words")
        guard count > 0 else { return }
        guard (address + UInt64(offset)) % 4 == 0 else {
            throw CUDAError.invalidArgument("cannot fill 32-bit words at byte offset \(offset): not 4-byte aligned")
        }
        try device.bind()
        let api = device.api
        try api.check(
            api.cuMemsetD32Async(address + UInt64(offset), word, count, stream.handle), "cuMemsetD32Async(\(count) words)")
    }

    /// Checks that `rows` rows of `bytes` bytes, `pitch` apart from `offset`, lie inside the buffer.
    private func checkSpan(_ offset: Int, _ rows: Int, _ bytes: Int, pitch: Int, _ action: String) throws {
        let (reach, overflow) = pitch.multipliedReportingOverflow(by: max(rows - 1, 0))
        guard offset >= 0, bytes >= 0, !overflow, reach <= byteCount - bytes - offset else {
            throw CUDAError.invalidArgument("cannot \(action) at byte offset \(offset) of a \(byteCount)-byte device buffer")
        }
    }
}
