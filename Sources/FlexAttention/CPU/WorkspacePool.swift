import Synchronization

/// Float buffers of one size, zeroed when first made and handed from work item to work item, so that large
/// per-item buffers are paged in once per thread instead of once per item (fresh pages cost the kernel a fault
/// and a clear each). A buffer comes back holding what its last user left in it.
final class WorkspacePool: Sendable {
    private let count: Int
    private let idle = Mutex<[SendablePointer<Float>]>([])
    private let made = Mutex<[SendablePointer<Float>]>([])

    /// - Parameter count: Floats per buffer.
    init(count: Int) {
        self.count = max(count, 1)
    }

    /// Runs `body` with a buffer no other caller holds meanwhile.
    func withBuffer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = idle.withLock { $0.popLast() } ?? makeBuffer()
        defer { idle.withLock { $0.append(buffer) } }
        return try body(buffer.value)
    }

    private func makeBuffer() -> SendablePointer<Float> {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
        let buffer = SendablePointer(pointer)
        made.withLock { $0.append(buffer) }
        return buffer
    }

    deinit {
        for buffer in made.withLock({ $0 }) { buffer.value.deallocate() }
    }
}
