import CFlexAttention
@testable import FlexAttention
import Foundation
import Testing

/// A fresh seed per run, recorded in failure messages through the tests' comments.
func freshSeed() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

/// Uniform values in [−1, 1].
func randomValues(_ count: Int, rng: inout SplitMix64) -> [Float] {
    (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
}

/// ‖a − b‖ / ‖b‖; +∞ when counts differ or anything is NaN.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    guard a.count == b.count else { return .infinity }
    var (difference, norm) = (0.0, 0.0)
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return .infinity }
        difference += (Double(x) - y) * (Double(x) - y)
        norm += y * y
    }
    return norm == 0 ? difference.squareRoot() : (difference / norm).squareRoot()
}

/// This thread's `fa_last_error()`.
func lastErrorMessage() -> String { String(cString: fa_last_error()) }

/// C strings that live as long as this pool, for the `const char *` fields of descriptions.
final class CStrings {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func callAsFunction(_ text: String) -> UnsafePointer<CChar> {
        let pointer = strdup(text)!
        pointers.append(pointer)
        return UnsafePointer(pointer)
    }

    /// `bytes` and a terminating NUL, whatever they encode.
    func callAsFunction(bytes: [UInt8]) -> UnsafePointer<CChar> {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (index, byte) in (bytes + [0]).enumerated() { pointer[index] = CChar(bitPattern: byte) }
        allocated.append(pointer)
        return UnsafePointer(pointer)
    }

    private var allocated: [UnsafeMutablePointer<CChar>] = []

    deinit {
        pointers.forEach { free($0) }
        allocated.forEach { $0.deallocate() }
    }
}

/// A new tensor a call returned (`DLManagedTensorVersioned *` or `DLManagedTensor *`), read and released.
struct ReturnedTensor {
    let pointer: UnsafeMutableRawPointer
    let kind: fa_output_kind

    init(_ pointer: UnsafeMutableRawPointer?, kind: fa_output_kind) throws {
        self.pointer = try #require(pointer)
        self.kind = kind
    }

    var dl: DLTensor {
        kind == FA_DLPACK_VERSIONED
            ? pointer.assumingMemoryBound(to: DLManagedTensorVersioned.self).pointee.dl_tensor
            : pointer.assumingMemoryBound(to: DLManagedTensor.self).pointee.dl_tensor
    }

    var shape: [Int] { (0..<Int(dl.ndim)).map { Int(dl.shape[$0]) } }
    var strides: [Int] { (0..<Int(dl.ndim)).map { Int(dl.strides[$0]) } }

    /// The elements in logical order (the tensor is compact, as the library's outputs are).
    func floats() throws -> [Float] {
        let dl = self.dl
        let dtype: DType = switch (dl.dtype.code, dl.dtype.bits) {
        case (UInt8(kDLFloat.rawValue), 32): .float32
        case (UInt8(kDLFloat.rawValue), 16): .float16
        default: .bfloat16
        }
        #expect(strides == Tensor.contiguousStrides(shape))
        let bytes = Int(dl.byte_offset) + shape.reduce(1, *) * dtype.byteSize
        return try Tensor(
            storage: TensorStorage(unowned: try #require(dl.data), byteCount: bytes), dtype: dtype, shape: shape,
            strides: strides, offset: Int(dl.byte_offset) / dtype.byteSize
        ).floats()
    }

    /// Calls the deleter, once.
    func release() {
        if kind == FA_DLPACK_VERSIONED {
            let managed = pointer.assumingMemoryBound(to: DLManagedTensorVersioned.self)
            #expect(managed.pointee.version.major == 1 && managed.pointee.version.minor == 0)
            #expect(managed.pointee.flags == 0)
            managed.pointee.deleter?(managed)
        } else {
            let managed = pointer.assumingMemoryBound(to: DLManagedTensor.self)
            managed.pointee.deleter?(managed)
        }
    }

    /// The elements, then the tensor released.
    func consume() throws -> [Float] {
        defer { release() }
        return try floats()
    }
}

/// A description of a CPU attention problem with every field a test does not set left empty.
func cpuDescription(
    batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, keyLength: Int, headDim: Int, valueDim: Int,
    dtype: DType = .float32
) -> fa_attention_desc {
    var desc = fa_attention_desc()
    desc.device = DLDevice(device_type: kDLCPU, device_id: 0)
    desc.dtype = dtype.dlDataType
    (desc.batch, desc.query_heads, desc.key_value_heads) = (Int64(batch), Int64(queryHeads), Int64(keyValueHeads))
    (desc.query_length, desc.key_length) = (Int64(queryLength), Int64(keyLength))
    (desc.head_dim, desc.value_dim) = (Int64(headDim), Int64(valueDim))
    desc.includes_backward = 1
    return desc
}

/// Prepares `desc`, expecting success.
func createAttention(_ desc: fa_attention_desc) throws -> OpaquePointer {
    var desc = desc
    var handle: OpaquePointer?
    let status = fa_attention_create(&desc, &handle)
    #expect(status == FA_OK, "\(lastErrorMessage())")
    return try #require(handle)
}

/// Random Q, K, V of an attention shape, and their Float64 reference.
struct AttentionInputs {
    let query: [Float], key: [Float], value: [Float]
    let queryShape: [Int], keyShape: [Int], valueShape: [Int]

    init(batch: Int, queryHeads: Int, keyValueHeads: Int, queryLength: Int, keyLength: Int, headDim: Int,
         valueDim: Int, rng: inout SplitMix64) {
        queryShape = [batch, queryHeads, queryLength, headDim]
        keyShape = [batch, keyValueHeads, keyLength, headDim]
        valueShape = [batch, keyValueHeads, keyLength, valueDim]
        query = randomValues(queryShape.reduce(1, *), rng: &rng)
        key = randomValues(keyShape.reduce(1, *), rng: &rng)
        value = randomValues(valueShape.reduce(1, *), rng: &rng)
    }

    /// Compact host tensors of the inputs.
    func tensors() throws -> (HostTensor, HostTensor, HostTensor) {
        (try HostTensor(query, shape: queryShape), try HostTensor(key, shape: keyShape),
         try HostTensor(value, shape: valueShape))
    }

    /// The Float64 reference of these inputs.
    func reference(scale: Double? = nil) -> ReferenceAttention {
        ReferenceAttention(
            shape: (queryShape[0], queryShape[1], keyShape[1], queryShape[2], keyShape[2], queryShape[3], valueShape[3]),
            q: query.map(Double.init), k: key.map(Double.init), v: value.map(Double.init),
            scale: scale ?? 1 / Double(queryShape[3]).squareRoot())
    }
}
