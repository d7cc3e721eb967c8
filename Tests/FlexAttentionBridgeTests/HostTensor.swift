import CFlexAttention
@testable import FlexAttention
import Foundation

/// Host memory of a test and a `DLTensor` viewing it, as a C caller would hand it to the library: the memory, shape
/// and strides arrays live as long as this object.
final class HostTensor {
    let memory: UnsafeMutableRawPointer
    let byteCount: Int
    let dtype: DType
    let shape: [Int]
    let strides: [Int]
    let byteOffset: Int
    private let shapeArray: UnsafeMutablePointer<Int64>
    private let stridesArray: UnsafeMutablePointer<Int64>
    /// The `DLTensor` handed to the library; tests may change its fields to make it wrong.
    var dl: DLTensor

    /// A view of `shape` with `strides` (row-major when nil) starting `byteOffset` bytes into `byteCount` bytes of
    /// memory filled with `fill` bytes.
    init(byteCount: Int, dtype: DType, shape: [Int], strides: [Int]?, byteOffset: Int = 0, passStrides: Bool = true) {
        (self.byteCount, self.dtype, self.shape, self.byteOffset) = (byteCount, dtype, shape, byteOffset)
        self.strides = strides ?? Tensor.contiguousStrides(shape)
        memory = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 16), alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 16))
        shapeArray = .allocate(capacity: max(shape.count, 1))
        stridesArray = .allocate(capacity: max(shape.count, 1))
        for axis in shape.indices {
            shapeArray[axis] = Int64(shape[axis])
            stridesArray[axis] = Int64(self.strides[axis])
        }
        dl = DLTensor(
            data: memory, device: DLDevice(device_type: kDLCPU, device_id: 0), ndim: Int32(shape.count),
            dtype: dtype.dlDataType, shape: shapeArray, strides: passStrides ? stridesArray : nil,
            byte_offset: UInt64(byteOffset))
    }

    deinit {
        memory.deallocate()
        shapeArray.deallocate()
        stridesArray.deallocate()
    }

    /// A compact row-major tensor holding `values`.
    convenience init(_ values: [Float], shape: [Int], dtype: DType = .float32) throws {
        self.init(byteCount: values.count * dtype.byteSize, dtype: dtype, shape: shape, strides: nil, passStrides: false)
        try write(values)
    }

    /// `values` (logical `[B, H, S, D]`, row-major) in BSHD memory after `padding` unused elements: the permuted
    /// view a caller passes for a projection's output, with a byte offset.
    static func bshd(_ values: [Float], shape: [Int], dtype: DType = .float32, padding: Int = 3) throws -> HostTensor {
        let (h, s, d) = (shape[1], shape[2], shape[3])
        let tensor = HostTensor(
            byteCount: (values.count + padding) * dtype.byteSize, dtype: dtype, shape: shape,
            strides: [s * h * d, d, h * d, 1], byteOffset: padding * dtype.byteSize)
        try tensor.write(values)
        return tensor
    }

    /// A tensor of `shape` whose every element is NaN, to see what a call writes.
    static func poisoned(shape: [Int], dtype: DType = .float32, strides: [Int]? = nil, byteCount: Int? = nil) throws
        -> HostTensor
    {
        let count = shape.reduce(1, *)
        let tensor = HostTensor(
            byteCount: byteCount ?? count * dtype.byteSize, dtype: dtype, shape: shape, strides: strides)
        try tensor.write([Float](repeating: .nan, count: count))
        return tensor
    }

    /// A compact integer tensor (int32 or int64).
    static func integers(_ values: [Int64], shape: [Int], bits: Int) -> HostTensor {
        let tensor = HostTensor(
            byteCount: values.count * bits / 8, dtype: .float32, shape: shape, strides: nil, passStrides: false)
        tensor.dl.dtype = DLDataType(code: UInt8(kDLInt.rawValue), bits: UInt8(bits), lanes: 1)
        for (index, value) in values.enumerated() {
            if bits == 32 {
                tensor.memory.storeBytes(of: Int32(value), toByteOffset: index * 4, as: Int32.self)
            } else {
                tensor.memory.storeBytes(of: value, toByteOffset: index * 8, as: Int64.self)
            }
        }
        return tensor
    }

    /// The view as a library tensor over the same memory.
    var view: Tensor {
        get throws {
            try Tensor(
                storage: TensorStorage(unowned: memory, byteCount: byteCount), dtype: dtype, shape: shape,
                strides: strides, offset: byteOffset / dtype.byteSize)
        }
    }

    /// Writes logical row-major `values` through the view.
    func write(_ values: [Float]) throws { try view.copy(from: Tensor(values, shape: shape, dtype: dtype)) }

    /// The view's elements in logical row-major order.
    func floats() throws -> [Float] { try view.floats() }

    /// Calls `body` with a pointer to the `DLTensor`.
    func with<Result>(_ body: (UnsafePointer<DLTensor>) throws -> Result) rethrows -> Result {
        try withUnsafePointer(to: &dl, body)
    }

    /// Calls `body` with a mutable pointer to the `DLTensor` (for the outputs of `fa_attention_forward_into`).
    func withMutable<Result>(_ body: (UnsafeMutablePointer<DLTensor>) throws -> Result) rethrows -> Result {
        try withUnsafeMutablePointer(to: &dl, body)
    }
}

extension DType {
    var dlDataType: DLDataType {
        switch self {
        case .float32: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 1)
        case .float16: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 16, lanes: 1)
        case .bfloat16: DLDataType(code: UInt8(kDLBfloat.rawValue), bits: 16, lanes: 1)
        }
    }
}
