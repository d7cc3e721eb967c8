import Glibc

/// Where the bytes of a `.npy` file come from, read front to back: the prelude (magic, version, header) is read
/// through this, so one parser serves bytes in memory and open files alike.
protocol NumPyByteSource {
    /// The next `count` bytes, fewer only where the source ends.
    mutating func read(_ count: Int) throws -> [UInt8]
}

/// `.npy` bytes already in memory.
struct NumPyMemorySource: NumPyByteSource {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + count)
        defer { position = end }
        return Array(bytes[position..<end])
    }

    /// Everything not read yet.
    var rest: ArraySlice<UInt8> { bytes[position...] }
}

/// An open `.npy` file, read only as far as its header says: a pipe or a device such as `/dev/zero` costs no
/// more than the array it claims to hold, and a regular file is checked to hold that much before it is allocated.
final class NumPyFileSource: NumPyByteSource {
    private let descriptor: Int32
    private let path: String
    /// Bytes in the file when it is a regular file; `nil` for pipes and devices, whose length is unknown.
    private let size: Int?
    private var position = 0

    /// - Throws: ``NumPyError/unreadable(path:reason:)`` when it cannot be opened.
    init(path: String) throws {
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        self.path = path
        guard descriptor >= 0 else { throw NumPyError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        var status = stat()
        size = fstat(descriptor, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG ? Int(status.st_size) : nil
    }

    deinit { close(descriptor) }

    func read(_ count: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = try fill(UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// The prelude, checked against the file's size when it is a regular file, so that a shape the file does not
    /// hold fails before anything is allocated for it (pipes and devices show their length only as they are read).
    func readPrelude() throws -> NumPyPrelude {
        var source = self
        let prelude = try NumPyPrelude(reading: &source)
        if let size, size - position != prelude.byteCount {
            throw NumPyError.dataSizeMismatch(expectedBytes: prelude.byteCount, actualBytes: size - position)
        }
        return prelude
    }

    /// Fills `buffer` with the data, then checks that nothing follows it.
    /// - Throws: ``NumPyError/dataSizeMismatch(expectedBytes:actualBytes:)`` when the data ends early,
    ///   ``NumPyError/trailingData(expectedBytes:)`` when more follows.
    func readData(into buffer: UnsafeMutableRawBufferPointer) throws {
        let count = try fill(buffer)
        guard count == buffer.count else {
            throw NumPyError.dataSizeMismatch(expectedBytes: buffer.count, actualBytes: count)
        }
        guard try read(1).isEmpty else { throw NumPyError.trailingData(expectedBytes: buffer.count) }
    }

    /// Reads until `buffer` is full or the file ends; the number of bytes read.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var count = 0
        while count < buffer.count {
            let result = Glibc.read(descriptor, base + count, buffer.count - count)
            if result < 0 && errno == EINTR { continue }
            guard result >= 0 else { throw NumPyError.unreadable(path: path, reason: String(cString: strerror(errno))) }
            if result == 0 { break }
            count += result
        }
        position += count
        return count
    }
}
