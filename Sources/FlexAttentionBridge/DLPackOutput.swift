#if canImport(Glibc)
import Glibc
#endif
import CFlexAttention
import FlexAttention

/// Which DLPack exchange object a call's new tensors are (`fa_output_kind`).
enum DLPackOutputKind {
    case versioned
    case legacy

    init(_ value: Int32) throws {
        switch value {
        case Int32(FA_DLPACK_VERSIONED.rawValue): self = .versioned
        case Int32(FA_DLPACK_LEGACY.rawValue): self = .legacy
        default: throw BridgeError.invalid("output_kind \(value) is neither FA_DLPACK_VERSIONED (0) nor FA_DLPACK_LEGACY (1)")
        }
    }
}

/// What a new DLPack tensor's `manager_ctx` retains until its deleter runs: the library tensor that owns the memory
/// (a host ``Tensor``, or a ``DeviceTensor`` whose stream-ordered buffer is freed on the call's stream), and the
/// shape and strides arrays the `DLTensor` points at.
private final class DLPackOwner {
    let tensor: any Sendable
    let shape: UnsafeMutablePointer<Int64>
    let strides: UnsafeMutablePointer<Int64>

    init(tensor: any Sendable, shape: UnsafeMutablePointer<Int64>, strides: UnsafeMutablePointer<Int64>) {
        (self.tensor, self.shape, self.strides) = (tensor, shape, strides)
    }

    deinit {
        free(shape)
        free(strides)
    }
}

/// The new tensors of one call, made before any is handed out, so that a failure part way releases those made
/// already and the caller receives none.
struct DLPackOutputs {
    let kind: DLPackOutputKind
    private var made: [UnsafeMutableRawPointer] = []

    private init(kind: DLPackOutputKind) { self.kind = kind }

    /// A new DLPack tensor for each of `tensors`, in order: all of them, or none.
    static func make(_ tensors: [ProducedTensor], kind: DLPackOutputKind) throws -> [UnsafeMutableRawPointer] {
        var outputs = DLPackOutputs(kind: kind)
        do {
            return try tensors.map { tensor in
                switch tensor {
                case .host(let tensor): try outputs.add(tensor)
                case .device(let tensor): try outputs.add(tensor)
                }
            }
        } catch {
            outputs.discard()
            throw error
        }
    }

    /// A new DLPack tensor owning `tensor`.
    private mutating func add(_ tensor: Tensor) throws -> UnsafeMutableRawPointer {
        try add(
            owner: tensor, data: tensor.storage.baseAddress, device: DLDevice(device_type: kDLCPU, device_id: 0),
            dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides, offset: tensor.offset)
    }

    /// A new DLPack tensor owning `tensor`.
    private mutating func add(_ tensor: DeviceTensor) throws -> UnsafeMutableRawPointer {
        let device = DLDevice(device_type: kDLCUDA, device_id: Int32(tensor.buffer.device.ordinal))
        return try add(
            owner: tensor, data: UnsafeMutableRawPointer(bitPattern: UInt(tensor.buffer.address)), device: device,
            dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides, offset: tensor.offset)
    }

    /// Releases every tensor made so far, as their deleters would.
    private func discard() {
        for pointer in made {
            switch kind {
            case .versioned: deleteVersioned(pointer.assumingMemoryBound(to: DLManagedTensorVersioned.self))
            case .legacy: deleteLegacy(pointer.assumingMemoryBound(to: DLManagedTensor.self))
            }
        }
    }

    private mutating func add(
        owner tensor: any Sendable, data: UnsafeMutableRawPointer?, device: DLDevice, dtype: DType, shape: [Int],
        strides: [Int], offset: Int
    ) throws -> UnsafeMutableRawPointer {
        let rank = shape.count
        let arrayBytes = max(rank, 1) * MemoryLayout<Int64>.stride
        let structBytes = kind == .versioned
            ? MemoryLayout<DLManagedTensorVersioned>.size : MemoryLayout<DLManagedTensor>.size
        guard let shapeMemory = malloc(arrayBytes) else { throw BridgeError.outOfMemory(arrayBytes) }
        guard let stridesMemory = malloc(arrayBytes) else {
            free(shapeMemory)
            throw BridgeError.outOfMemory(arrayBytes)
        }
        guard let managed = malloc(structBytes) else {
            free(shapeMemory)
            free(stridesMemory)
            throw BridgeError.outOfMemory(structBytes)
        }
        let shapeArray = shapeMemory.bindMemory(to: Int64.self, capacity: max(rank, 1))
        let stridesArray = stridesMemory.bindMemory(to: Int64.self, capacity: max(rank, 1))
        for axis in 0..<rank {
            shapeArray[axis] = Int64(shape[axis])
            stridesArray[axis] = Int64(strides[axis])
        }
        let owner = DLPackOwner(tensor: tensor, shape: shapeArray, strides: stridesArray)
        let dlTensor = DLTensor(
            data: data, device: device, ndim: Int32(rank), dtype: Self.dataType(dtype), shape: shapeArray,
            strides: stridesArray, byte_offset: UInt64(offset * dtype.byteSize))
        let context = Unmanaged.passRetained(owner).toOpaque()
        switch kind {
        case .versioned:
            managed.bindMemory(to: DLManagedTensorVersioned.self, capacity: 1).initialize(
                to: DLManagedTensorVersioned(
                    version: DLPackVersion(major: 1, minor: 0), manager_ctx: context, deleter: deleteVersioned,
                    flags: 0, dl_tensor: dlTensor))
        case .legacy:
            managed.bindMemory(to: DLManagedTensor.self, capacity: 1).initialize(
                to: DLManagedTensor(dl_tensor: dlTensor, manager_ctx: context, deleter: deleteLegacy))
        }
        made.append(managed)
        return managed
    }

    private static func dataType(_ dtype: DType) -> DLDataType {
        switch dtype {
        case .float32: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 1)
        case .float16: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 16, lanes: 1)
        case .bfloat16: DLDataType(code: UInt8(kDLBfloat.rawValue), bits: 16, lanes: 1)
        }
    }
}

/// The deleter of the versioned tensors the library makes.
private func deleteVersioned(_ managed: UnsafeMutablePointer<DLManagedTensorVersioned>?) {
    guard let managed else { return }
    if let context = managed.pointee.manager_ctx { Unmanaged<DLPackOwner>.fromOpaque(context).release() }
    free(managed)
}

/// The deleter of the legacy tensors the library makes.
private func deleteLegacy(_ managed: UnsafeMutablePointer<DLManagedTensor>?) {
    guard let managed else { return }
    if let context = managed.pointee.manager_ctx { Unmanaged<DLPackOwner>.fromOpaque(context).release() }
    free(managed)
}
