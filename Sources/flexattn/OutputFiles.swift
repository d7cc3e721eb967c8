#if canImport(Glibc)
import Glibc
#endif

/// Writes a command's output files all or nothing.
///
/// Each file is first written in full to a temporary file beside its destination (same folder, so the rename
/// cannot cross file systems); only when every one is written are they renamed into place. On any failure the
/// temporary files and the outputs already renamed are removed.
enum OutputFiles {
    static func write(_ files: [(path: String, bytes: [UInt8])]) throws {
        var temporaries: [String] = []
        var placed: [String] = []
        do {
            for file in files { temporaries.append(try writeTemporary(file.bytes, beside: file.path)) }
            for (temporary, file) in zip(temporaries, files) {
                guard rename(temporary, file.path) == 0 else { throw systemError("cannot write \(file.path)") }
                placed.append(file.path)
            }
        } catch {
            for path in temporaries + placed { unlink(path) }
            throw error
        }
    }

    /// The path of a new file beside `path` holding `bytes`; nothing is left behind when it fails.
    private static func writeTemporary(_ bytes: [UInt8], beside path: String) throws -> String {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw systemError("cannot write \(path)") }
        var failure: CommandLineError? = bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                guard let base = raw.baseAddress else { break }
                let count = Glibc.write(descriptor, base + written, raw.count - written)
                if count < 0 { return systemError("cannot write \(path)") }
                written += count
            }
            return nil
        }
        if close(descriptor) != 0, failure == nil { failure = systemError("cannot write \(path)") }
        if let failure {
            unlink(temporary)
            throw failure
        }
        return temporary
    }

    private static func systemError(_ message: String) -> CommandLineError {
        CommandLineError("\(message): \(String(cString: strerror(errno)))")
    }
}
