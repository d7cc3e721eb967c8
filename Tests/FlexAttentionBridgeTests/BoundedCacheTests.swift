@testable import FlexAttentionBridge
import Testing

@Suite("C interface: the bounded cache of decode plans")
struct BoundedCacheTests {
    @Test("hits reuse the value, the least recently used entry goes first, a failed make stores nothing")
    func leastRecentlyUsed() throws {
        let cache = BoundedCache<Int, String>(capacity: 2)
        var made = 0
        func value(_ key: Int) throws -> String {
            try cache.value(for: key) {
                made += 1
                return "\(key)#\(made)"
            }
        }
        #expect(try value(1) == "1#1")
        #expect(try value(2) == "2#2")
        #expect(try value(1) == "1#1")  // a hit, now the most recent
        #expect(try value(3) == "3#3")  // evicts 2
        #expect(cache.count == 2)
        #expect(try value(1) == "1#1")
        #expect(try value(2) == "2#4")
        struct Refused: Error {}
        #expect(throws: Refused.self) { try cache.value(for: 9) { throw Refused() } }
        #expect(cache.count == 2)
    }
}
