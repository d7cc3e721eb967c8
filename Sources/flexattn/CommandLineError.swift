/// A problem with the command line or its files, reported as one line on stderr.
struct CommandLineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Options given as `--name value` (repeatable ones collected in order) and bare `--flag`s.
struct ParsedOptions {
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []

    /// Parses `arguments`, accepting only the names in `valued` (which take a value) and `flags`.
    init(_ arguments: [String], valued: Set<String>, flags allowedFlags: Set<String>) throws {
        var index = 0
        while index < arguments.count {
            let name = arguments[index]
            if allowedFlags.contains(name) {
                flags.insert(name)
                index += 1
            } else if valued.contains(name) {
                guard index + 1 < arguments.count else { throw CommandLineError("\(name) needs a value") }
                values[name, default: []].append(arguments[index + 1])
                index += 2
            } else {
                throw CommandLineError("unknown option '\(name)'")
            }
        }
    }

    /// The value of a single-valued option; an error if it was given twice.
    func value(_ name: String) throws -> String? {
        guard let given = values[name] else { return nil }
        guard given.count == 1 else { throw CommandLineError("\(name) was given more than once") }
        return given[0]
    }

    /// Every value of a repeatable option, in order.
    func all(_ name: String) -> [String] { values[name] ?? [] }

    func has(_ flag: String) -> Bool { flags.contains(flag) }
}

#if canImport(Glibc)
import Glibc
#endif

/// Writes `text` to standard error unbuffered.
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = write(STDERR_FILENO, &bytes, bytes.count)
}
