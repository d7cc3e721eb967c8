/// A TMA descriptor (`CUtensorMap`) for one 16-bit `[B, H, S, D]` attention input: a 4-D view, innermost first
/// `(D, S, H, B)`, copied in boxes of 64 columns by `boxRows` rows into 128-byte-swizzled shared tiles (see
/// ``HopperHelpers``); elements outside the tensor arrive as zeros.
package struct CUDATensorMap: Sendable {
    static let byteCount = 128
    let words: [UInt64]

    /// A descriptor's 128 bytes as encoded elsewhere (tests check argument lists with zeros, without a driver).
    init(words: [UInt64]) {
        self.words = words
    }

    /// Whether the Hopper kernels can run on `device` with these inputs: an sm_90a target, a driver that encodes
    /// tensor maps, and inputs TMA can read.
    static func usable(on device: CUDADevice, for tensors: [DeviceTensor]) -> Bool {
        device.architecture == .sm90a && device.api.cuTensorMapEncodeTiled != nil && tensors.allSatisfy(canDescribe)
    }

    /// Whether TMA can read `tensor`: 16-bit, contiguous rows, 16-byte-aligned start and strides (axes of length
    /// 1 excepted, their stride is never used).
    static func canDescribe(_ tensor: DeviceTensor) -> Bool {
        canDescribe(dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides, address: tensor.address)
    }

    static func canDescribe(dtype: DType, shape: [Int], strides: [Int], address: UInt64) -> Bool {
        dtype.byteSize == 2 && shape.count == 4 && strides.count == 4 && strides[3] == 1 && address % 16 == 0
            && (0..<3).allSatisfy { shape[$0] == 1 || (strides[$0] > 0 && strides[$0] % 8 == 0) }
    }

    /// - Throws: ``CUDAError/invalidArgument(_:)`` when TMA cannot read `tensor` or the driver has no TMA; the
    ///   driver's error when it rejects the descriptor.
    init(_ tensor: DeviceTensor, boxRows: Int, device: CUDADevice) throws {
        guard Self.canDescribe(tensor), let encode = device.api.cuTensorMapEncodeTiled else {
            throw CUDAError.invalidArgument(
                "no TMA descriptor for a tensor of shape \(tensor.shape), strides \(tensor.strides) on \(device.name)")
        }
        let (b, h, s, d) = (tensor.shape[0], tensor.shape[1], tensor.shape[2], tensor.shape[3])
        let dimensions: [UInt64] = [d, s, h, b].map { UInt64($0) }
        // Byte strides of S, H, B; an axis of length 1 gets the stride of a contiguous layout, which TMA accepts.
        var strides: [UInt64] = []
        var contiguous = (d * 2 + 15) / 16 * 16
        for axis in [2, 1, 0] {
            strides.append(UInt64(tensor.shape[axis] == 1 ? contiguous : tensor.strides[axis] * 2))
            contiguous = Int(strides.last ?? 0) * tensor.shape[axis]
        }
        let box: [UInt32] = [64, UInt32(boxRows), 1, 1]
        let elementStrides: [UInt32] = [1, 1, 1, 1]
        var words = [UInt64](repeating: 0, count: Self.byteCount / 8)
        let result = words.withUnsafeMutableBytes { map in
            // UINT16 elements (bits are only copied), no interleave, 128-byte swizzle, 256-byte L2 promotion,
            // zeros outside the tensor.
            encode(map.baseAddress.unsafelyUnwrapped, 1, 4, UnsafeMutableRawPointer(bitPattern: UInt(tensor.address)),
                   dimensions, strides, box, elementStrides, 0, 3, 3, 0)
        }
        try device.api.check(result, "cuTensorMapEncodeTiled(shape \(tensor.shape), strides \(tensor.strides), box \(box))")
        self.words = words
    }
}
