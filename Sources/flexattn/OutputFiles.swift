import FlexAttention

#if canImport(Glibc)
import Glibc
#endif

/// One output: a `.npy` file holding a Float32 tensor.
struct OutputFile {
    let path: String
    /// Contiguous, row-major Float32.
    let tensor: Tensor

    init(path: String, tensor: Tensor) throws {
        self.path = path
        self.tensor = try tensor.contiguousFloat32()
    }

    /// Writes the `.npy` bytes to `descriptor` straight from the tensor's memory.
    func write(to descriptor: Int32) throws {
        let prelude = NumPyArray.encodedPrelude(descr: "<f4", shape: tensor.shape)
        try prelude.withUnsafeBytes { try writeAll($0, to: descriptor) }
        let data = UnsafeRawBufferPointer(
            start: tensor.storage.baseAddress + tensor.offset * 4, count: tensor.elementCount * 4)
        try writeAll(data, to: descriptor)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) throws {
        guard let base = bytes.baseAddress else { return }
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(descriptor, base + written, bytes.count - written)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw systemError("cannot write \(path)") }
            written += count
        }
    }
}

/// Writes a command's output files all or nothing, and never loses a file that was there before.
///
/// Every destination is checked first (see ``OutputDestination``): a folder, a special file that cannot be written
/// through, or two outputs naming one file fail before anything is written. Files to replace are written in full to
/// temporary files beside them, FIFOs and character devices are written through, and only then are the temporary
/// files renamed into place. On a failure only the temporary files are removed: no destination is ever unlinked.
enum OutputFiles {
    static func write(_ files: [OutputFile]) throws {
        let destinations = try OutputDestination.resolve(files.map(\.path))
        var temporaries: [(path: String, destination: OutputDestination)] = []
        do {
            for folder in Set(destinations.compactMap(\.folder)) { TemporaryOutput.removeStale(in: folder) }
            var streams: [(descriptor: Int32, file: OutputFile)] = []
            defer { for stream in streams { close(stream.descriptor) } }
            for (file, destination) in zip(files, destinations) {
                if let folder = destination.folder {
                    let temporary = try TemporaryOutput.create(in: folder)
                    temporaries.append((temporary.path, destination))
                    try writeAndClose(file, to: temporary.descriptor)
                } else {
                    let descriptor = open(destination.path, O_WRONLY | O_CLOEXEC)
                    guard descriptor >= 0 else { throw systemError("cannot write \(file.path)") }
                    streams.append((descriptor, file))
                }
            }
            for stream in streams { try stream.file.write(to: stream.descriptor) }
        } catch {
            for temporary in temporaries { unlink(temporary.path) }
            throw error
        }
        try place(temporaries)
    }

    /// Renames each temporary file over its destination. Each destination was checked to take a rename before
    /// anything was written; should one fail all the same, the rest are not renamed and the message names what was.
    private static func place(_ temporaries: [(path: String, destination: OutputDestination)]) throws {
        for (index, temporary) in temporaries.enumerated() {
            guard rename(temporary.path, temporary.destination.path) != 0 else { continue }
            let failure = systemError("cannot write \(temporary.destination.given)")
            for later in temporaries[index...] { unlink(later.path) }
            let placed = temporaries[..<index].map(\.destination.given)
            throw placed.isEmpty
                ? failure : CommandLineError("\(failure); already written: \(placed.joined(separator: ", "))")
        }
    }

    private static func writeAndClose(_ file: OutputFile, to descriptor: Int32) throws {
        do {
            try file.write(to: descriptor)
        } catch {
            close(descriptor)
            throw error
        }
        let synced = fsync(descriptor) == 0
        guard close(descriptor) == 0, synced else { throw systemError("cannot write \(file.path)") }
    }
}

private func systemError(_ message: String) -> CommandLineError {
    CommandLineError("\(message): \(String(cString: strerror(errno)))")
}
