extension DeviceKVCache {
    /// Queues the writing of `keys` and `values` (`[B, Hkv, n, D]` and `[B, Hkv, n, Dv]`, any dtype and strides,
    /// on the cache's device) after each sequence's tokens on `stream`, and grows every length by `n`, assigning free
    /// pages where a paged sequence needs them. Returns without waiting.
    ///
    /// Everything is checked on the host first (``KVCache/append(keys:values:)``'s checks, shared with it). Then one
    /// small host-to-device copy (the old lengths and the table entries that change) and one kernel launch do the
    /// rest in stream order: the tokens, the block table and the device lengths. Calls queued on `stream` afterwards
    /// see the new tokens; ``lengths`` and ``pageTable`` change at once. The copy is from pageable host memory,
    /// which graph capture does not take: append between replays of a captured decode, not inside a capture.
    /// - Throws: ``FlexAttentionError`` for tensors of another shape or device,
    ///   ``FlexAttentionError/cacheFull(sequence:length:capacity:)`` when a sequence would outgrow the cache and
    ///   ``FlexAttentionError/outOfPages(needed:free:)`` when the pool has too few free pages; ``CUDAError`` for
    ///   another stream's device or a failed launch. Nothing is queued or changed when it throws before the launch.
    public func append(keys newKeys: DeviceTensor, values newValues: DeviceTensor, on stream: CUDAStream) throws {
        for (tensor, name) in [(newKeys, "appended keys"), (newValues, "appended values")]
        where tensor.buffer.device !== device {
            throw FlexAttentionError.invalidArgument(
                "\(name) are on CUDA device \(tensor.buffer.device.ordinal), the cache on \(device.ordinal)")
        }
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "the stream is on CUDA device \(stream.device.ordinal), the cache on \(device.ordinal)")
        }
        guard newKeys.dtype == newValues.dtype else {
            throw FlexAttentionError.mixedDTypes(expected: newKeys.dtype, actual: newValues.dtype, tensor: "appended values")
        }
        let count = newKeys.shape.count == 4 ? newKeys.shape[2] : 0
        let (batch, kvHeads, headDim, valueDim) = (batch, kvHeads, headDim, valueDim)
        try KVCache.checkTokens(newKeys.shape, expected: [batch, kvHeads, count, headDim], name: "appended keys")
        try KVCache.checkTokens(newValues.shape, expected: [batch, kvHeads, count, valueDim], name: "appended values")
        let kernel = KVAppendKernel(dtype: dtype, input: newKeys.dtype, isPaged: isPaged)
        let function = try Self.kernelCache.get().function(for: kernel, on: device)
        try state.withLock { index in
            let grown = try index.appending(count)
            let changes = Self.changedEntries(from: index, to: grown)
            let patch = index.lengths.map { Int32($0) } + changes
            let patchBuffer = try DeviceBuffer(device: device, byteCount: patch.count * 4, stream: stream)
            try patch.withUnsafeBytes { try patchBuffer.copy(from: $0, stream: stream) }
            let operands = KVAppendOperands(
                newKeys: TensorOperand(newKeys), newValues: TensorOperand(newValues), keys: TensorOperand(keys),
                values: TensorOperand(values), blockTable: tableBuffer?.address ?? 0, lengths: lengthBuffer.address,
                patch: patchBuffer.address, batch: batch, kvHeads: kvHeads, count: count, headDim: headDim,
                valueDim: valueDim, pageSize: grown.pageTable?.pageSize ?? grown.capacity,
                tableStride: grown.pageTable?.maxPagesPerSequence ?? 0, patchCount: changes.count / 2)
            CUDAGraph.retainIfCapturing([newKeys.buffer, newValues.buffer, patchBuffer, self])
            try LoadedKernel(
                function: function, signature: kernel.signature,
                grid: (KVAppendKernel.blocks(rows: batch * kvHeads * count, writes: max(batch, changes.count / 2)), 1, 1),
                block: KVAppendKernel.threads
            ).enqueue(operands, on: stream)
            index = grown
        }
    }

    /// Empties `sequence` and, when paged, returns its pages to the pool: at once on the host, and on the device in
    /// order on `stream` (two small memsets, which graph capture takes).
    /// - Throws: ``FlexAttentionError/invalidArgument(_:)`` for a sequence outside the batch; ``CUDAError`` for
    ///   another stream's device. Nothing changes then.
    public func release(sequence: Int, on stream: CUDAStream) throws {
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "the stream is on CUDA device \(stream.device.ordinal), the cache on \(device.ordinal)")
        }
        try state.withLock { index in
            let emptied = try index.releasing(sequence: sequence)
            try lengthBuffer.fill32(0, atByteOffset: 4 * sequence, count: 1, stream: stream)
            if let tableBuffer, let table = emptied.pageTable {
                let row = table.maxPagesPerSequence
                try tableBuffer.fill32(UInt32(bitPattern: -1), atByteOffset: 4 * sequence * row, count: row, stream: stream)
            }
            index = emptied
        }
    }

    /// The block-table entries that growing `old` into `new` assigned, as (entry, page) pairs in entry order. Only
    /// entries from each sequence's old page count to its new one can change (those below were assigned already).
    static func changedEntries(from old: KVCacheIndex, to new: KVCacheIndex) -> [Int32] {
        guard let before = old.pageTable, let after = new.pageTable else { return [] }
        let (size, row) = (after.pageSize, after.maxPagesPerSequence)
        var pairs: [Int32] = []
        for (b, (from, to)) in zip(old.lengths, new.lengths).enumerated() {
            for page in (from + size - 1) / size..<(to + size - 1) / size {
                let entry = b * row + page
                if before.entries[entry] != after.entries[entry] { pairs += [Int32(entry), after.entries[entry]] }
            }
        }
        return pairs
    }

    /// One kernel cache per process for the append kernels (shared with the plans').
    static var kernelCache: Result<KernelCache, any Error> { AttentionPlan.processCache }
}

extension DeviceBuffer {
    /// Queues setting `count` 32-bit words from byte `offset` (4-byte aligned) to `value`.
    func fill32(_ value: UInt32, atByteOffset offset: Int, count: Int, stream: CUDAStream) throws {
        guard offset >= 0, count >= 0, offset % 4 == 0, offset + 4 * count <= byteCount else {
            throw CUDAError.invalidArgument("cannot set \(count) words at byte offset \(offset) of \(byteCount) bytes")
        }
        guard count > 0 else { return }
        try device.bind()
        try device.api.check(
            device.api.cuMemsetD32Async(address + UInt64(offset), value, count, stream.handle), "cuMemsetD32Async")
    }
}
