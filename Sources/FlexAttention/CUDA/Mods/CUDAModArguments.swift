/// A mod's run-time values on the device, laid out as ``CUDAModFunction`` reads them: `ints` holds the Int scalars
/// then three extents per table (unused axes 1), `floats` the Float scalars, `tables` each table's device address.
final class CUDAModArguments: Sendable {
    private let ints: DeviceBuffer
    private let floats: DeviceBuffer
    private let tablePointers: DeviceBuffer
    /// Kept alive for as long as `tablePointers` points at them.
    private let tables: [DeviceBuffer]
    /// Name, shape and element type of each table, in the order of `tables`.
    let tableSlots: [TableSlot]

    /// What a table's device memory holds, apart from its values.
    struct TableSlot: Sendable {
        let name: String
        let shape: [Int]
        let elementType: ModType
    }

    init(_ arguments: ModArguments, device: CUDADevice) throws {
        let (ints, floats) = Self.scalars(arguments)
        tableSlots = arguments.tables.map { TableSlot(name: $0.name, shape: $0.shape, elementType: $0.elementType) }
        tables = try arguments.tables.map { table in
            switch table.elements {
            case .int32(let values): try DeviceBuffer(device: device, copying: values)
            case .float(let values): try DeviceBuffer(device: device, copying: values)
            }
        }
        // A zero-length buffer has no address: keep one element in each.
        self.ints = try DeviceBuffer(device: device, copying: ints + [0])
        self.floats = try DeviceBuffer(device: device, copying: floats + [0])
        tablePointers = try DeviceBuffer(device: device, copying: tables.map(\.address) + [0])
    }

    /// The Int scalars, then three extents per table (unused axes 1); the Float scalars.
    private static func scalars(_ arguments: ModArguments) -> (ints: [Int64], floats: [Float]) {
        var ints: [Int64] = []
        var floats: [Float] = []
        for scalar in arguments.scalars {
            switch scalar {
            case .int(let value): ints.append(Int64(value))
            case .float(let value): floats.append(value)
            }
        }
        for table in arguments.tables {
            ints += (0..<3).map { Int64($0 < table.shape.count ? table.shape[$0] : 1) }
        }
        return (ints, floats)
    }

    /// The three kernel parameters of one mod: `ints`, `floats`, `tables`.
    var operands: ModOperands {
        ModOperands(ints: ints.address, floats: floats.address, tables: tablePointers.address)
    }

    /// Writes new values of the same structure into the same device memory, in order on `stream`, so that kernels
    /// (and graphs) reading these buffers see them from then on.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when a count or a table's size differs, before anything is copied.
    func update(_ arguments: ModArguments, stream: CUDAStream) throws {
        let (ints, floats) = Self.scalars(arguments)
        let sizes = arguments.tables.map { $0.count * 4 }
        guard (ints.count + 1) * 8 == self.ints.byteCount, (floats.count + 1) * 4 == self.floats.byteCount,
              sizes == tables.map(\.byteCount)
        else {
            throw CUDAError.invalidArgument("the new mod's constants or table sizes differ from the plan's")
        }
        try (ints + [0]).withUnsafeBytes { try self.ints.copy(from: $0, stream: stream) }
        try (floats + [0]).withUnsafeBytes { try self.floats.copy(from: $0, stream: stream) }
        for (table, buffer) in zip(arguments.tables, tables) {
            switch table.elements {
            case .int32(let values): try values.withUnsafeBytes { try buffer.copy(from: $0, stream: stream) }
            case .float(let values): try values.withUnsafeBytes { try buffer.copy(from: $0, stream: stream) }
            }
        }
    }

    /// Queues a device-to-device copy of `source`'s elements over table `slot`'s values on `stream`.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when `source` is not a contiguous tensor of the table's element
    ///   count and 4-byte elements, before anything is queued.
    func copyTable(_ slot: Int, from source: DeviceTensor, stream: CUDAStream) throws {
        let target = tables[slot]
        guard source.dtype.byteSize == 4, source.strides == Tensor.contiguousStrides(source.shape),
              source.shape.reduce(1, *) * 4 == target.byteCount
        else {
            throw CUDAError.invalidArgument(
                "table \(tableSlots[slot].name) takes \(target.byteCount / 4) contiguous 4-byte elements, not a"
                    + " \(source.dtype) tensor of shape \(source.shape), strides \(source.strides)")
        }
        try target.copy(from: source.buffer, sourceOffset: source.offset * 4, count: target.byteCount, stream: stream)
    }
}

extension DeviceBuffer {
    /// A new buffer holding `values`.
    convenience init<Element: BitwiseCopyable>(device: CUDADevice, copying values: [Element]) throws {
        try self.init(device: device, byteCount: values.count * MemoryLayout<Element>.stride)
        try values.withUnsafeBytes { try copy(from: $0) }
    }

    /// A new buffer holding `values`, allocated and filled in order on `stream` (the host values are staged before
    /// this returns), freed on `stream` with its last reference.
    convenience init<Element: BitwiseCopyable>(device: CUDADevice, copying values: [Element], stream: CUDAStream) throws {
        try self.init(device: device, byteCount: values.count * MemoryLayout<Element>.stride, stream: stream)
        try values.withUnsafeBytes { try copy(from: $0, stream: stream) }
    }
}
