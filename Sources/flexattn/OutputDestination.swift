#if canImport(Glibc)
import Glibc
#endif

/// What an output path names, found before anything is written, and how it is written.
///
/// A path that does not exist yet, or names a regular file, is replaced atomically: written to a temporary file in
/// the same folder and renamed over it. A symbolic link is followed, so its target is replaced and the link kept.
/// A FIFO or a character device (`/dev/null`, `/dev/stdout`) is written through, never replaced. Folders, block
/// devices, sockets and dangling links are refused.
struct OutputDestination {
    enum Kind: Equatable {
        /// Written to a temporary file in `folder`, then renamed to `path`.
        case replaced(folder: String)
        /// Opened and written in place.
        case writtenThrough
    }

    /// Which file a path names, to tell two spellings of one file apart: device and inode where it exists, else
    /// those of the folder it would be created in plus its name.
    struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
        let name: String?
    }

    /// The path as the user gave it, for messages.
    let given: String
    /// The path written: `given`, or a symbolic link's target.
    let path: String
    let kind: Kind
    let identity: Identity

    /// - Throws: ``CommandLineError`` when the path cannot be written as a file.
    init(_ given: String) throws {
        self.given = given
        var status = stat()
        guard lstat(given, &status) == 0 else {
            guard errno == ENOENT else { throw Self.failure(given) }
            path = given
            let folder = Self.folder(of: given)
            guard stat(folder, &status) == 0 else { throw Self.failure(given) }
            guard (status.st_mode & S_IFMT) == S_IFDIR else {
                throw CommandLineError("cannot write \(given): \(folder) is not a folder")
            }
            kind = .replaced(folder: folder)
            identity = Identity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino), name: Self.name(of: given))
            return
        }
        if (status.st_mode & S_IFMT) == S_IFLNK {
            guard let resolved = realpath(given, nil) else {
                throw CommandLineError(
                    "cannot write \(given): a symbolic link that leads to no file (\(String(cString: strerror(errno))))")
            }
            path = String(cString: resolved)
            free(resolved)
            guard stat(path, &status) == 0 else { throw Self.failure(given) }
        } else {
            path = given
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG: kind = .replaced(folder: Self.folder(of: path))
        case S_IFIFO, S_IFCHR: kind = .writtenThrough
        case S_IFDIR: throw CommandLineError("cannot write \(given): it is a folder")
        default: throw CommandLineError("cannot write \(given): it is not a regular file, a FIFO or a character device")
        }
        identity = Identity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino), name: nil)
    }

    /// The folder its temporary file goes in; `nil` when it is written through.
    var folder: String? {
        if case .replaced(let folder) = kind { folder } else { nil }
    }

    /// Every path's destination, refusing two that name one file.
    static func resolve(_ paths: [String]) throws -> [OutputDestination] {
        let destinations = try paths.map(OutputDestination.init)
        var seen: [Identity: String] = [:]
        for destination in destinations {
            if let other = seen.updateValue(destination.given, forKey: destination.identity) {
                throw CommandLineError("'\(other)' and '\(destination.given)' are the same file; give each output its own")
            }
        }
        return destinations
    }

    private static func failure(_ path: String) -> CommandLineError {
        CommandLineError("cannot write \(path): \(String(cString: strerror(errno)))")
    }

    private static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func name(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }
}
