import FlexAttention
import Synchronization

/// A device as the C interface uses it: beside another allocator (PyTorch's caching allocator, which cannot take
/// memory back from ours), so freed stream-ordered memory goes back to the driver at each synchronisation, as in
/// CUDA's default, rather than staying in the library's pool.
enum SharedDevice {
    private static let configured = Mutex<Set<Int>>([])

    static func open(_ ordinal: Int) throws -> CUDADevice {
        let device = try CUDADevice.open(ordinal)
        configured.withLock { ordinals in
            // A device without memory pools has nothing to return; the call's own errors come later, if any.
            if ordinals.insert(ordinal).inserted { try? device.setMemoryPoolRetention(bytes: 0) }
        }
        return device
    }
}
