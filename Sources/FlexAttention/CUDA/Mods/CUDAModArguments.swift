/// A mod's run-time values on the device, laid out as ``CUDAModFunction`` reads them: `ints` holds the Int scalars
/// then three extents per table (unused axes 1), `floats` the Float scalars, `tables` each table's device address.
final class CUDAModArguments: Sendable {
    private let ints: DeviceBuffer
    private let floats: DeviceBuffer
    private let tablePointers: DeviceBuffer
    /// Kept alive for as long as `tablePointers` points at them.
    private let tables: [DeviceBuffer]

    init(_ arguments: ModArguments, device: CUDADevice) throws {
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

    /// The three kernel parameters of one mod: `ints`, `floats`, `tables`.
    var kernelArguments: [KernelArgument] { [.buffer(ints), .buffer(floats), .buffer(tablePointers)] }
}

extension DeviceBuffer {
    /// A new buffer holding `values`.
    convenience init<Element: BitwiseCopyable>(device: CUDADevice, copying values: [Element]) throws {
        try self.init(device: device, byteCount: values.count * MemoryLayout<Element>.stride)
        try values.withUnsafeBytes { try copy(from: $0) }
    }
}
