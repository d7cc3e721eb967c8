/// A problem with the command line or its files, reported as one line on stderr.
struct CommandLineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The value of an option that may be given at most once, collected as a list: ArgumentParser would keep the last.
func single(_ values: [String], _ name: String) throws -> String? {
    guard values.count <= 1 else { throw CommandLineError("\(name) was given more than once") }
    return values.first
}

#if canImport(Glibc)
import Glibc
#endif

/// Writes `text` to standard error unbuffered.
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = write(STDERR_FILENO, &bytes, bytes.count)
}
