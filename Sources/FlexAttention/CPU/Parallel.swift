import Dispatch

/// Runs `body(0..<count)` on all cores, each index once. Work is handed out dynamically, so callers list their
/// most expensive items first. Results must not depend on which thread ran an item.
func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
    guard count > 1 else {
        if count == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: count, execute: body)
}

/// A pointer handed to parallel work items that write disjoint parts of its memory.
struct SendablePointer<T>: @unchecked Sendable {
    let value: UnsafeMutablePointer<T>
    init(_ value: UnsafeMutablePointer<T>) { self.value = value }
}
