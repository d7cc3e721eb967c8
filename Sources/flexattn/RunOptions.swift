import FlexAttention

/// The command line of `flexattn run`, checked before any file is read.
struct RunOptions {
    /// A `NAME=FILE.npy` value of `--table` or `--dtable`.
    struct NamedFile {
        let name: String
        let path: String
    }

    /// The files of a backward pass: `dO` to read, `dQ`, `dK`, `dV` to write.
    struct GradientFiles {
        let outputGradient: String
        let query: String
        let key: String
        let value: String
    }

    let query: String
    let key: String
    let value: String
    let output: String
    let logSumExp: String?
    let scale: Float?
    let device: Device
    let mask: String?
    let score: String?
    let tables: [NamedFile]
    let gradients: GradientFiles?
    let tableGradients: [NamedFile]

    private static let gradientOptions = ["--grad-out", "--dq", "--dk", "--dv"]

    init(arguments: [String]) throws {
        let options = try ParsedOptions(
            arguments,
            valued: Set(["--q", "--k", "--v", "--out", "--lse", "--scale", "--device", "--mask", "--score", "--table",
                         "--dtable"] + Self.gradientOptions),
            flags: [])
        func required(_ name: String) throws -> String {
            guard let value = try options.value(name) else { throw CommandLineError("\(name) is required") }
            return value
        }
        query = try required("--q")
        key = try required("--k")
        value = try required("--v")
        output = try required("--out")
        logSumExp = try options.value("--lse")
        scale = try options.value("--scale").map(Self.parseScale)
        device = try parseDevice(try options.value("--device") ?? "cpu")
        mask = try options.value("--mask")
        score = try options.value("--score")
        tables = try Self.namedFiles(options.all("--table"), option: "--table")
        tableGradients = try Self.namedFiles(options.all("--dtable"), option: "--dtable")

        let missing = try Self.gradientOptions.filter { try options.value($0) == nil }
        switch missing.count {
        case Self.gradientOptions.count: gradients = nil
        case 0:
            gradients = GradientFiles(
                outputGradient: try required("--grad-out"), query: try required("--dq"), key: try required("--dk"),
                value: try required("--dv"))
        default:
            throw CommandLineError("--grad-out, --dq, --dk and --dv go together; missing \(missing.joined(separator: ", "))")
        }
        if gradients == nil, !tableGradients.isEmpty {
            throw CommandLineError("--dtable needs a backward pass (--grad-out, --dq, --dk and --dv)")
        }
        for entry in tableGradients where !tables.contains(where: { $0.name == entry.name }) {
            throw CommandLineError("--dtable \(entry.name): no --table named \(entry.name)")
        }
    }

    /// Every file the command writes.
    var outputPaths: [String] {
        [output] + [logSumExp].compactMap { $0 }
            + [gradients?.query, gradients?.key, gradients?.value].compactMap { $0 } + tableGradients.map(\.path)
    }

    private static func parseScale(_ text: String) throws -> Float {
        guard let scale = Float(text), scale.isFinite else {
            throw CommandLineError("--scale takes a finite number, got '\(text)'")
        }
        return scale
    }

    /// `NAME=FILE` values, each name at most once.
    private static func namedFiles(_ values: [String], option: String) throws -> [NamedFile] {
        var files: [NamedFile] = []
        for text in values {
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex, text.index(after: equals) != text.endIndex
            else { throw CommandLineError("\(option) takes NAME=FILE.npy, got '\(text)'") }
            let file = NamedFile(name: String(text[..<equals]), path: String(text[text.index(after: equals)...]))
            guard !files.contains(where: { $0.name == file.name }) else {
                throw CommandLineError("\(option) \(file.name) is given more than once")
            }
            files.append(file)
        }
        return files
    }
}
