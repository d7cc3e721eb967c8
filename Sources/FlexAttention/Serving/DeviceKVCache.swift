import Synchronization

/// The keys and values of a batch of sequences being decoded, in device memory: the device twin of ``KVCache``,
/// read by ``DecodePlan``.
///
/// - Contiguous: keys `[B, Hkv, capacity, D]` and values `[B, Hkv, capacity, Dv]`, any strides (BSHD memory
///   included).
/// - Paged: pools `[pages, pageSize, Hkv, D]` and `[pages, pageSize, Hkv, Dv]` and a ``PageTable`` (page sizes 1 to
///   256, powers of two or not).
///
/// The cache keeps its lengths and page table twice: on the host, where ``append(keys:values:on:)`` and
/// ``release(sequence:on:)`` check and grow them before anything is queued, and in device Int32 buffers that the
/// kernels read, updated in stream order by the same calls. Slots past a sequence's length may hold anything, NaN
/// included; decoding never reads them.
///
/// Unlike the host cache this is a class: its device memory is shared by every reference, so its host-side index is
/// too (guarded by a lock; calls from several threads are safe, and their order on streams is the caller's).
///
/// ```swift
/// let cache = try DeviceKVCache(batch: 8, kvHeads: 8, headDim: 128, pageCount: 4096, pageSize: 16,
///                               maxPagesPerSequence: 512, dtype: .bfloat16, device: gpu)
/// try cache.append(keys: promptKeys, values: promptValues, on: stream)   // [8, 8, promptLength, 128]
/// let plan = try DecodePlan(queryHeads: 32, queryLength: 1, cache: cache)
/// let step = try plan.decode(query: q, cache: cache, on: stream)         // q: [8, 32, 1, 128]
/// ```
public final class DeviceKVCache: Sendable {
    /// The keys: `[B, Hkv, capacity, D]`, or the key page pool `[pages, pageSize, Hkv, D]`.
    public let keys: DeviceTensor
    /// The values: `[B, Hkv, capacity, Dv]`, or the value page pool `[pages, pageSize, Hkv, Dv]`.
    public let values: DeviceTensor
    /// Int32 `[B]`: the lengths the kernels read.
    let lengthBuffer: DeviceBuffer
    /// Int32 `[B, maxPagesPerSequence]`: the block table the kernels read; nil for a contiguous cache.
    let tableBuffer: DeviceBuffer?
    /// The host-side lengths and table, always what the device buffers hold once the queued updates have run.
    let state: Mutex<KVCacheIndex>

    /// A contiguous cache over existing device tensors, holding `lengths[b]` tokens of sequence `b`.
    /// - Throws: ``FlexAttentionError`` for tensors that are not rank 4, disagree on batch, heads, capacity, dtype
    ///   or device, or lengths outside `0...capacity`; ``CUDAError`` when the device fails.
    public convenience init(keys: DeviceTensor, values: DeviceTensor, lengths: [Int]) throws {
        try KVCache.checkContiguous(keys: keys.shape, values: values.shape, lengths: lengths)
        try self.init(keys: keys, values: values,
                      index: KVCacheIndex(capacity: keys.shape[2], lengths: lengths, pageTable: nil))
    }

    /// A paged cache over existing device page pools.
    /// - Throws: ``FlexAttentionError`` for pools that are not rank 4 or disagree with each other (dtype and device
    ///   included) or the table, or lengths outside `0...capacity` or reaching an unassigned page; ``CUDAError`` when
    ///   the device fails.
    public convenience init(keyPages: DeviceTensor, valuePages: DeviceTensor, pageTable: PageTable, lengths: [Int])
        throws
    {
        try KVCache.checkPaged(keyPages: keyPages.shape, valuePages: valuePages.shape, pageTable: pageTable)
        try self.init(keys: keyPages, values: valuePages,
                      index: KVCacheIndex(capacity: pageTable.capacity, lengths: lengths, pageTable: pageTable))
    }

    /// An empty contiguous cache of zeros on `device`.
    /// - Throws: ``FlexAttentionError`` for a non-positive size; ``CUDAError`` when the device has no room.
    public convenience init(
        batch: Int, kvHeads: Int, capacity: Int, headDim: Int, valueDim: Int? = nil, dtype: DType = .float32,
        layout: TensorLayout = .bhsd, device: CUDADevice
    ) throws {
        let (keys, values) = try Self.zeros(
            [batch, kvHeads, capacity, headDim], [batch, kvHeads, capacity, valueDim ?? headDim], dtype: dtype,
            layout: layout, device: device)
        try self.init(keys: keys, values: values, lengths: [Int](repeating: 0, count: max(batch, 0)))
    }

    /// An empty paged cache on `device`: pools of zeros and a table with no page assigned.
    /// - Throws: ``FlexAttentionError`` for a page size outside 1...256 or a non-positive size; ``CUDAError`` when
    ///   the device has no room.
    public convenience init(
        batch: Int, kvHeads: Int, headDim: Int, valueDim: Int? = nil, pageCount: Int, pageSize: Int,
        maxPagesPerSequence: Int, dtype: DType = .float32, device: CUDADevice
    ) throws {
        let table = try PageTable(
            batch: batch, maxPagesPerSequence: maxPagesPerSequence, pageCount: pageCount, pageSize: pageSize)
        let (keys, values) = try Self.zeros(
            [pageCount, pageSize, kvHeads, headDim], [pageCount, pageSize, kvHeads, valueDim ?? headDim], dtype: dtype,
            layout: .bhsd, device: device)
        try self.init(keyPages: keys, valuePages: values, pageTable: table, lengths: [Int](repeating: 0, count: batch))
    }

    /// A copy of a host cache on `device`: its tensors (strides kept), lengths and page table.
    /// - Throws: ``CUDAError`` when the device has no room or fails.
    public convenience init(copying cache: KVCache, to device: CUDADevice) throws {
        try self.init(keys: DeviceTensor(copying: cache.keys, to: device),
                      values: DeviceTensor(copying: cache.values, to: device), index: cache.index)
    }

    /// A cache over existing device tensors for work queued on `stream`: its lengths and page table are copied to
    /// device buffers allocated, filled and later freed in order on `stream`, so making it never synchronises (a
    /// caller that wraps its own cache memory for a single step, as the C interface's `fa_decode` does).
    /// - Throws: as ``init(keys:values:lengths:)`` (contiguous, `pageTable` nil) or
    ///   ``init(keyPages:valuePages:pageTable:lengths:)`` (paged).
    package convenience init(
        keys: DeviceTensor, values: DeviceTensor, lengths: [Int], pageTable: PageTable?, stream: CUDAStream
    ) throws {
        if let pageTable {
            try KVCache.checkPaged(keyPages: keys.shape, valuePages: values.shape, pageTable: pageTable)
        } else {
            try KVCache.checkContiguous(keys: keys.shape, values: values.shape, lengths: lengths)
        }
        try self.init(
            keys: keys, values: values,
            index: KVCacheIndex(capacity: pageTable?.capacity ?? keys.shape[2], lengths: lengths, pageTable: pageTable),
            stream: stream)
    }

    /// With a `stream`, the length and table buffers are allocated and filled in stream order on it.
    private init(keys: DeviceTensor, values: DeviceTensor, index: KVCacheIndex, stream: CUDAStream? = nil) throws {
        guard keys.dtype == values.dtype else {
            throw FlexAttentionError.mixedDTypes(expected: keys.dtype, actual: values.dtype, tensor: "values")
        }
        let device = keys.buffer.device
        guard values.buffer.device === device else {
            throw FlexAttentionError.invalidArgument(
                "the values are on CUDA device \(values.buffer.device.ordinal), the keys on \(device.ordinal)")
        }
        guard index.capacity <= Int(Int32.max) else {
            throw FlexAttentionError.invalidArgument("a cache of \(index.capacity) tokens per sequence is too large")
        }
        self.keys = keys
        self.values = values
        func buffer(_ values: [Int32]) throws -> DeviceBuffer {
            if let stream { return try DeviceBuffer(device: device, copying: values, stream: stream) }
            return try DeviceBuffer(device: device, copying: values)
        }
        lengthBuffer = try buffer(index.lengths.map { Int32($0) })
        tableBuffer = try index.pageTable.map { try buffer($0.entries) }
        state = Mutex(index)
    }

    private static func zeros(_ keyShape: [Int], _ valueShape: [Int], dtype: DType, layout: TensorLayout,
                              device: CUDADevice) throws -> (DeviceTensor, DeviceTensor) {
        for shape in [keyShape, valueShape] where !shape.allSatisfy({ $0 > 0 }) {
            throw FlexAttentionError.nonPositiveDimension(tensor: "a KV cache", shape: shape)
        }
        let tensors = try [keyShape, valueShape].map {
            try DeviceTensor(device: device, dtype: dtype, shape: $0, layout: layout)
        }
        for tensor in tensors { try tensor.buffer.fill(0) }
        return (tensors[0], tensors[1])
    }

    /// The device the cache's memory is on.
    public var device: CUDADevice { keys.buffer.device }
    /// The element type of keys and values.
    public var dtype: DType { keys.dtype }
    /// Tokens held by each sequence (those of appends already queued included).
    public var lengths: [Int] { state.withLock { $0.lengths } }
    /// Where the tokens live when the cache is paged; nil when it is contiguous.
    public var pageTable: PageTable? { state.withLock { $0.pageTable } }
    /// Sequences.
    public var batch: Int { state.withLock { $0.batch } }
    /// Tokens each sequence can hold.
    public var capacity: Int { state.withLock { $0.capacity } }
    /// Whether the cache is paged.
    public var isPaged: Bool { tableBuffer != nil }
    /// Key/value heads.
    public var kvHeads: Int { keys.shape[isPaged ? 2 : 1] }
    /// Elements per key.
    public var headDim: Int { keys.shape[3] }
    /// Elements per value.
    public var valueDim: Int { values.shape[3] }

    /// What a ``DecodePlan`` fixes about a cache: everything but the tensors' strides and contents.
    var layout: DeviceKVCacheLayout {
        let table = pageTable
        return DeviceKVCacheLayout(
            batch: batch, kvHeads: kvHeads, headDim: headDim, valueDim: valueDim, capacity: capacity, dtype: dtype,
            pageSize: table?.pageSize, pageCount: table?.pageCount)
    }
}

/// The sizes, dtype and paging of a KV cache: what a ``DecodePlan`` is made for and checks each call's cache against.
struct DeviceKVCacheLayout: Equatable, Sendable, CustomStringConvertible {
    var batch: Int
    var kvHeads: Int
    var headDim: Int
    var valueDim: Int
    var capacity: Int
    var dtype: DType
    /// Tokens per page; nil for a contiguous cache.
    var pageSize: Int?
    var pageCount: Int?

    var description: String {
        "\(dtype) B=\(batch) Hkv=\(kvHeads) D=\(headDim) Dv=\(valueDim) capacity \(capacity), "
            + (pageSize.map { "\(pageCount ?? 0) pages of \($0)" } ?? "contiguous")
    }
}
