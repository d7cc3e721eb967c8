@testable import FlexAttention
import Glibc
import Testing

/// Headers and files that would crash a naive reader or read without end: each is a typed error, found before the
/// data is read or allocated.
@Suite("Limits of the .npy reader")
struct NumPyLimitsTests {
    static let valid = try! NumPyArray(shape: [2, 3], elements: .float32([1, 2, 3, 4, 5, 6])).encoded()

    /// A header whose shape is `depth` nested brackets around one extent.
    static func nested(_ depth: Int) -> [UInt8] {
        let shape = String(repeating: "[", count: depth) + "3" + String(repeating: "]", count: depth)
        return npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }")
    }

    @Test("brackets nested past the limit are refused without deep recursion")
    func deepNesting() {
        #expect(throws: NumPyError.nestingTooDeep(limit: NumPyHeader.maximumNesting)) {
            try NumPyArray(decoding: npyBytes(
                header: "{'descr': '<f4', 'fortran_order': False, 'shape': " + String(repeating: "[", count: 25_000) + ", }"))
        }
        #expect(throws: NumPyError.nestingTooDeep(limit: NumPyHeader.maximumNesting)) {
            try NumPyArray(decoding: Self.nested(NumPyHeader.maximumNesting))
        }
        // One level less parses: the shape is then refused for what it holds, not for its depth.
        #expect(throws: NumPyError.malformedHeader("shape holds a non-integer")) {
            try NumPyArray(decoding: Self.nested(NumPyHeader.maximumNesting - 1))
        }
    }

    @Test("a header length over the limit is refused before the header is read")
    func longHeader() {
        let length = NumPyHeader.maximumLength + 1
        let bytes = [0x93] + Array("NUMPY".utf8) + [2, 0] + (0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
        #expect(throws: NumPyError.headerTooLong(length: length, limit: NumPyHeader.maximumLength)) {
            try NumPyArray(decoding: bytes)
        }
    }

    @Test("endless devices are not .npy, read 8 bytes in", arguments: ["/dev/zero", "/dev/urandom"])
    func endlessDevice(path: String) {
        #expect(throws: NumPyError.notNumPy) { try NumPyArray(contentsOfFile: path) }
        #expect(throws: NumPyError.notNumPy) { try Tensor(contentsOfNumPyFile: path) }
    }

    @Test("a pipe is read for the array's bytes; short and long data are errors")
    func pipe() throws {
        #expect(try Self.throughPipe(Self.valid, NumPyArray.init(contentsOfFile:)) == NumPyArray(decoding: Self.valid))
        #expect(throws: NumPyError.trailingData(expectedBytes: 24)) {
            try Self.throughPipe(Self.valid + [0], NumPyArray.init(contentsOfFile:))
        }
        #expect(throws: NumPyError.dataSizeMismatch(expectedBytes: 24, actualBytes: 20)) {
            try Self.throughPipe(Array(Self.valid.dropLast(4)), NumPyArray.init(contentsOfFile:))
        }
    }

    @Test("a regular file shorter than its shape is refused before the elements are allocated")
    func absurdShapeInFile() throws {
        let folder = try ScratchFolder()
        try folder.write(npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 64), }",
                                  data: [UInt8](repeating: 0, count: 96)), to: "huge.npy")
        let path = folder.url.appendingPathComponent("huge.npy").path
        #expect(throws: NumPyError.dataSizeMismatch(expectedBytes: 1 << 48, actualBytes: 96)) {
            try NumPyArray(contentsOfFile: path)
        }
        #expect(throws: NumPyError.dataSizeMismatch(expectedBytes: 1 << 48, actualBytes: 96)) {
            try Tensor(contentsOfNumPyFile: path)
        }
    }

    @Test("elements that cannot be allocated are a typed error with the size asked for")
    func outOfMemory() throws {
        let header = npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (262144, 1073741824), }")
        #expect(throws: FlexAttentionError.outOfMemory(byteCount: 1 << 50)) {
            try Self.throughPipe(header, NumPyArray.init(contentsOfFile:))
        }
        #expect(throws: FlexAttentionError.outOfMemory(byteCount: 1 << 50)) { try Allocation.requireAvailable(1 << 50) }
    }

    /// `read` applied to a path that yields `bytes` through a pipe, which has no size, like a FIFO or stdin.
    static func throughPipe<T>(_ bytes: [UInt8], _ read: (String) throws -> T) throws -> T {
        var ends: [Int32] = [0, 0]
        try #require(Glibc.pipe(&ends) == 0)
        defer { close(ends[0]) }
        let written = bytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        close(ends[1])
        try #require(written == bytes.count)
        return try read("/proc/self/fd/\(ends[0])")
    }
}

@Suite struct CPUWorkingMemoryTests {
    @Test func unavailableWorkingMemoryIsATypedError() {
        #expect(throws: FlexAttentionError.outOfMemory(byteCount: .max)) {
            try CPUWorkingMemory.require(perThread: .max / 2, shared: 0)
        }
        // One thread: its 2^20-Float allowance plus the shared Floats make 2^58 Floats, 2^60 bytes.
        #expect(throws: FlexAttentionError.outOfMemory(byteCount: 1 << 60)) {
            try CPUParallelism.$maximumThreads.withValue(1) {
                try CPUWorkingMemory.require(perThread: 0, shared: 1 << 58 - 1 << 20)
            }
        }
    }
}
