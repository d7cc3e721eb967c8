import CFlexAttention
import FlexAttention

/// A `DLTensor` argument, read and checked once: where its memory is, its element type, and its view as the library
/// describes views (elements from the lowest byte the view reaches). The one place the C interface reads a
/// `DLTensor`; ``hostTensor()`` and ``deviceTensor(on:)`` wrap the caller's memory without copying it.
struct DLPackArgument {
    /// The element types the library reads.
    enum Element: Equatable {
        case float(DType)
        case int32
        case int64

        var byteSize: Int {
            switch self {
            case .float(let dtype): dtype.byteSize
            case .int32: 4
            case .int64: 8
            }
        }
    }

    /// Where the memory is.
    enum Location: Equatable {
        /// Host memory: kDLCPU, or kDLCUDAHost (pinned).
        case host
        /// Device memory of the CUDA device with this ordinal.
        case cuda(Int)
        /// CUDA managed memory, which host and device code may both read.
        case managed(Int)
    }

    /// How messages name the argument.
    let name: String
    let location: Location
    let element: Element
    let shape: [Int]
    /// In elements; negative ones are kept (the library's views take them).
    let strides: [Int]
    /// The address of the lowest byte the view reaches; 0 for an empty view.
    let base: UInt
    /// Bytes from `base` to the end of the highest element the view reaches.
    let byteCount: Int
    /// The element `[0, …, 0]`'s index from `base`.
    let offset: Int
    /// Elements in the view (more than it reaches when strides overlap); at most `Int.max / 8`, so that no byte
    /// count of them overflows.
    let elementCount: Int

    /// Reads `pointer`'s tensor, whose rank must be in `ranks`.
    /// - Throws: ``BridgeError`` (invalid argument) for a NULL pointer, another rank, a negative extent, a data type
    ///   other than float32/float16/bfloat16/int32/int64 with one lane, a device type the library does not read,
    ///   misaligned data, or a view whose byte extent overflows.
    init(_ pointer: UnsafePointer<DLTensor>?, name: String, ranks: ClosedRange<Int>) throws {
        guard let pointer else { throw BridgeError.null(name) }
        let tensor = pointer.pointee
        self.name = name
        let rank = Int(tensor.ndim)
        guard ranks.contains(rank) else {
            let expected = ranks.count == 1 ? "\(ranks.lowerBound)" : "\(ranks.lowerBound) to \(ranks.upperBound)"
            throw BridgeError.invalid("\(name) must have \(expected) dimensions, got ndim = \(rank)")
        }
        location = try Self.location(tensor.device, name: name)
        element = try Self.element(tensor.dtype, name: name)
        guard rank == 0 || tensor.shape != nil else { throw BridgeError.null("\(name)'s shape") }
        let shape = (0..<rank).map { Int(tensor.shape[$0]) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw BridgeError.invalid("\(name) has a negative extent: shape \(shape)") }
        let strides: [Int]
        if let given = tensor.strides {
            // An axis of extent 1 addresses nothing with its stride: take the row-major one, so that a view PyTorch
            // calls contiguous (whatever the strides of its unit axes) is contiguous to the library too.
            let rowMajor = try? Self.rowMajorStrides(shape, name: name)
            strides = (0..<rank).map { shape[$0] == 1 ? rowMajor?[$0] ?? Int(given[$0]) : Int(given[$0]) }
        } else {
            strides = try Self.rowMajorStrides(shape, name: name)
        }
        (self.shape, self.strides) = (shape, strides)
        var elements = 1
        for extent in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= Int.max / 8 else {
                throw BridgeError.invalid("\(name)'s shape \(shape) has too many elements")
            }
            elements = product
        }
        elementCount = elements
        let size = element.byteSize
        let (first, overflow) = UInt(bitPattern: tensor.data).addingReportingOverflow(UInt(tensor.byte_offset))
        guard !overflow, tensor.byte_offset <= UInt64(Int.max) else {
            throw BridgeError.invalid("\(name)'s data pointer plus byte_offset \(tensor.byte_offset) overflows")
        }
        if shape.contains(0) {
            (base, byteCount, offset) = (0, 0, 0)
            return
        }
        guard tensor.data != nil else { throw BridgeError.null("\(name)'s data") }
        guard first % UInt(size) == 0 else {
            throw BridgeError.invalid(
                "\(name)'s first element (data + byte_offset \(tensor.byte_offset)) is not aligned to its \(size)-byte"
                    + " elements")
        }
        guard let span = stridedSpan(shape: shape, strides: strides, offset: 0),
              case let (width, widthOverflow) = span.upperBound.subtractingReportingOverflow(span.lowerBound),
              !widthOverflow, width < .max, case let lowest = span.lowerBound,
              case let (lowBytes, lowOverflow) = lowest.multipliedReportingOverflow(by: size), !lowOverflow,
              case let (count, countOverflow) = (width + 1).multipliedReportingOverflow(by: size),
              !countOverflow,
              case let (start, startOverflow) = Int(bitPattern: first).addingReportingOverflow(lowBytes),
              !startOverflow, start > 0, UInt(bitPattern: start).addingReportingOverflow(UInt(count)).overflow == false
        else {
            throw BridgeError.invalid("\(name)'s shape \(shape) and strides \(strides) reach past the address space")
        }
        (base, byteCount, offset) = (UInt(bitPattern: start), count, -lowest)
    }

    var isEmpty: Bool { elementCount == 0 }

    /// The float type, for Q, K, V and outputs.
    func floatType() throws -> DType {
        guard case .float(let dtype) = element else {
            throw BridgeError.invalid("\(name) has an integer dtype; it must be float32, float16 or bfloat16")
        }
        return dtype
    }

    /// The view as a host tensor over the caller's memory.
    /// - Throws: ``BridgeError`` when the memory is not host-accessible or the elements are not floats.
    func hostTensor() throws -> Tensor {
        if case .cuda(let ordinal) = location {
            throw BridgeError.invalid("\(name) is on CUDA device \(ordinal); this call reads host tensors (kDLCPU)")
        }
        return try tensor(over: hostStorage())
    }

    /// The view as a device tensor over the caller's memory on `device`.
    /// - Throws: ``BridgeError`` when the memory is host memory, on another device or empty (device tensors have
    ///   every extent positive), or the elements are not floats.
    func deviceTensor(on device: CUDADevice) throws -> DeviceTensor {
        switch location {
        case .host:
            throw BridgeError.invalid("\(name) is in host memory; this call reads CUDA tensors (kDLCUDA)")
        case .cuda(let ordinal) where ordinal != device.ordinal:
            throw BridgeError.invalid("\(name) is on CUDA device \(ordinal); this call runs on \(device.ordinal)")
        case .cuda, .managed:
            break
        }
        guard !isEmpty else {
            throw BridgeError.invalid("\(name) has shape \(shape): CUDA tensors must have every extent positive")
        }
        let buffer = try DeviceBuffer(unowned: UInt64(base), byteCount: byteCount, device: device)
        return try DeviceTensor(buffer: buffer, dtype: floatType(), shape: shape, strides: strides, offset: offset)
    }

    /// The elements as Floats in row-major order, read wherever they are (device memory with a waiting copy, on
    /// `stream` when given, else after the whole device has finished its work).
    func floats(stream: CUDAStream? = nil) throws -> [Float] {
        let storage = try readableStorage(stream: stream)
        try Allocation.requireAvailable(elementCount * 4)
        return try tensor(over: storage).floats()
    }

    /// The integer elements in row-major order, read as ``floats(stream:)`` reads.
    func integers(stream: CUDAStream? = nil) throws -> [Int64] {
        guard element == .int32 || element == .int64 else {
            throw BridgeError.invalid("\(name) has a float dtype; it must be int32 or int64")
        }
        let storage = try readableStorage(stream: stream)
        try Allocation.requireAvailable(elementCount * 8)
        var values: [Int64] = []
        values.reserveCapacity(elementCount)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<elementCount {
            let at = offset + zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }  // within the checked span
            values.append(
                element == .int32
                    ? Int64(storage.baseAddress.load(fromByteOffset: at * 4, as: Int32.self))
                    : storage.baseAddress.load(fromByteOffset: at * 8, as: Int64.self))
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return values
    }

    /// Host memory holding the view's bytes: the caller's own, or a copy of device memory.
    private func readableStorage(stream: CUDAStream?) throws -> TensorStorage {
        guard case .cuda(let ordinal) = location, !isEmpty else { return try hostStorage() }
        let device = try stream?.device ?? SharedDevice.open(ordinal)
        guard device.ordinal == ordinal else {
            throw BridgeError.invalid("\(name) is on CUDA device \(ordinal); this call runs on \(device.ordinal)")
        }
        guard let storage = TensorStorage(zeroedByteCount: byteCount) else { throw BridgeError.outOfMemory(byteCount) }
        let source = try DeviceBuffer(unowned: UInt64(base), byteCount: byteCount, device: device)
        let target = UnsafeMutableRawBufferPointer(start: storage.baseAddress, count: byteCount)
        if let stream {
            try source.copy(to: target, stream: stream)
            try stream.synchronize()
        } else {
            try device.synchronize()
            try source.copy(to: target)
        }
        return storage
    }

    /// The caller's host memory under the view (a library buffer for an empty view, which reads nothing).
    private func hostStorage() throws -> TensorStorage {
        guard !isEmpty, let address = UnsafeMutableRawPointer(bitPattern: base) else {
            guard let storage = TensorStorage(zeroedByteCount: 0) else { throw BridgeError.outOfMemory(1) }
            return storage
        }
        return TensorStorage(unowned: address, byteCount: byteCount)
    }

    private func tensor(over storage: TensorStorage) throws -> Tensor {
        try Tensor(storage: storage, dtype: floatType(), shape: shape, strides: strides, offset: offset)
    }

    private static func location(_ device: DLDevice, name: String) throws -> Location {
        switch device.device_type {
        case kDLCPU, kDLCUDAHost: return .host
        case kDLCUDA: return .cuda(Int(device.device_id))
        case kDLCUDAManaged: return .managed(Int(device.device_id))
        default:
            throw BridgeError.invalid(
                "\(name) is on DLPack device type \(device.device_type.rawValue); the library reads kDLCPU (1), kDLCUDA"
                    + " (2), kDLCUDAHost (3) and kDLCUDAManaged (13)")
        }
    }

    private static func element(_ type: DLDataType, name: String) throws -> Element {
        let element: Element? = switch (UInt32(type.code), type.bits, type.lanes) {
        case (kDLFloat.rawValue, 32, 1): .float(.float32)
        case (kDLFloat.rawValue, 16, 1): .float(.float16)
        case (kDLBfloat.rawValue, 16, 1): .float(.bfloat16)
        case (kDLInt.rawValue, 32, 1): .int32
        case (kDLInt.rawValue, 64, 1): .int64
        default: nil
        }
        guard let element else {
            throw BridgeError.invalid(
                "\(name) has DLPack dtype (code \(type.code), bits \(type.bits), lanes \(type.lanes)); the library reads"
                    + " float32, float16, bfloat16, int32 and int64 with 1 lane")
        }
        return element
    }

    /// Compact row-major strides, checked not to overflow.
    private static func rowMajorStrides(_ shape: [Int], name: String) throws -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            let (next, overflow) = stride.multipliedReportingOverflow(by: max(shape[axis], 1))
            guard !overflow else { throw BridgeError.invalid("\(name)'s shape \(shape) has too many elements") }
            stride = next
        }
        return strides
    }
}
