import Dispatch
import Synchronization

/// How many threads the CPU attention uses.
public enum CPUParallelism {
    /// At most this many threads for the CPU work started in this task; all cores when `nil`. Results do not
    /// depend on it: every sum runs in a fixed order whatever the thread count.
    ///
    /// ```swift
    /// try CPUParallelism.$maximumThreads.withValue(1) { try attention.forward(query: q, key: k, value: v) }
    /// ```
    @TaskLocal public static var maximumThreads: Int?
}

/// Runs `body(0..<count)`, each index once, on up to ``CPUParallelism/maximumThreads`` threads. Indices are
/// handed out in order as threads become free, so callers list their most expensive items first. Results must
/// not depend on which thread ran an item.
func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
    let threads = min(count, CPUParallelism.maximumThreads.map { max(1, $0) } ?? Int.max)
    if threads <= 1 {
        for index in 0..<count { body(index) }
        return
    }
    if threads >= count {
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
        return
    }
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
        while true {
            let index = next.add(1, ordering: .relaxed).oldValue
            guard index < count else { return }
            body(index)
        }
    }
}

/// A pointer handed to parallel work items that write disjoint parts of its memory.
struct SendablePointer<T>: @unchecked Sendable {
    let value: UnsafeMutablePointer<T>
    init(_ value: UnsafeMutablePointer<T>) { self.value = value }
}
