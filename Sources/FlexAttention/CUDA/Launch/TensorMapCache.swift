import Synchronization

/// The TMA descriptors a plan's calls encoded, by what they describe, so that a call on tensors seen before (a
/// training loop's, a model's layers') skips the driver's encoding: a descriptor depends only on the address,
/// shape, strides and box, never on the contents.
final class TensorMapCache: Sendable {
    private struct Key: Hashable {
        let address: UInt64
        let shape: [Int]
        let strides: [Int]
        let boxRows: Int
    }

    /// Past this many descriptors the cache starts over, so that a caller cycling through fresh buffers cannot
    /// grow it without bound.
    private static let capacity = 256
    private let maps = Mutex<[Key: CUDATensorMap]>([:])

    /// The descriptor of `tensor` in boxes of `boxRows` rows, encoded on first use.
    func map(_ tensor: DeviceTensor, boxRows: Int) throws -> CUDATensorMap {
        let key = Key(address: tensor.address, shape: tensor.shape, strides: tensor.strides, boxRows: boxRows)
        if let map = maps.withLock({ $0[key] }) { return map }
        let map = try CUDATensorMap(tensor, boxRows: boxRows, device: tensor.buffer.device)
        maps.withLock { maps in
            if maps.count >= Self.capacity { maps.removeAll(keepingCapacity: true) }
            maps[key] = map
        }
        return map
    }
}
