#if canImport(Glibc)
import Glibc
#endif

/// The temporary files outputs are written to before they are renamed into place: `.flexattn-PID-XXXXXX`, hidden,
/// in the destination's folder (so the rename stays on one file system), and short whatever the destination's
/// name (so any name the file system takes can be written).
///
/// A process killed between creating and renaming one leaves it behind. Each run removes those of earlier runs
/// whose process is gone (`kill(PID, 0)` reports no such process): a live run's files are never touched, whatever
/// their age, so runs writing to one folder at once do not disturb each other.
enum TemporaryOutput {
    private static let prefix = ".flexattn-"

    /// Creates a new, empty temporary file in `folder`, open for writing.
    static func create(in folder: String) throws -> (path: String, descriptor: Int32) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        while true {
            let suffix = String((0..<6).map { _ in letters.randomElement() ?? "x" })
            let path = "\(folder)/\(prefix)\(getpid())-\(suffix)"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 { return (path, descriptor) }
            guard errno == EEXIST else {
                throw CommandLineError("cannot create a temporary file in \(folder): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Removes the temporary files in `folder` left by runs that no longer exist.
    static func removeStale(in folder: String) {
        guard let stream = opendir(folder) else { return }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.baseAddress.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? ""
            }
            guard let owner = owner(of: name), kill(owner, 0) != 0, errno == ESRCH else { continue }
            unlink("\(folder)/\(name)")
        }
    }

    /// The process that made a temporary file of this name, or `nil` when the name is not one of ours.
    private static func owner(of name: String) -> pid_t? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 6, let pid = pid_t(parts[0]), pid > 0 else { return nil }
        return pid
    }
}
