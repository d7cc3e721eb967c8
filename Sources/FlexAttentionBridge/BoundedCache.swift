import Synchronization

/// A small least-recently-used cache, safe from any thread. Lookups compare keys with `==` one by one, which for a
/// few dozen entries costs less than hashing keys that hold mod tables.
final class BoundedCache<Key: Equatable & Sendable, Value: Sendable>: Sendable {
    private let capacity: Int
    /// Least recently used first.
    private let entries = Mutex<[(key: Key, value: Value)]>([])

    init(capacity: Int) { self.capacity = capacity }

    /// The value for `key`, made by `make` on a miss (outside the lock: making it may take long, and two threads
    /// that miss at once both make one; the last stored is kept).
    func value(for key: Key, make: () throws -> Value) throws -> Value {
        let hit = entries.withLock { entries -> Value? in
            guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.value
        }
        if let hit { return hit }
        let made = try make()
        entries.withLock { entries in
            entries.removeAll { $0.key == key }
            entries.append((key, made))
            if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        }
        return made
    }

    /// How many values are held.
    var count: Int { entries.withLock { $0.count } }
}
