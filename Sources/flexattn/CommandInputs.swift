import FlexAttention

/// A `NAME=FILE.npy` value of `--table` or `--dtable`.
struct NamedFile {
    let name: String
    let path: String
}

/// A command over `.npy` files (`run`, `decode`): its output paths are checked first, then everything is read, checked
/// and computed before anything is written, and the outputs are written all or nothing (``OutputFiles``); any error
/// is one line.
protocol FileCommand {
    /// Every file the command writes.
    var outputPaths: [String] { get }
    /// Every output file's path and contents.
    func computeOutputs() throws -> [OutputFile]
}

extension FileCommand {
    func execute() throws {
        try oneLine {
            _ = try OutputDestination.resolve(outputPaths)
            try OutputFiles.write(try computeOutputs())
        }
    }
}

/// What `run` and `decode` read the same way: tables, sinks, mods and the scale, and 4-dimensional tensors.
enum CommandInputs {
    /// The `--table` files as mod tables.
    static func tables(_ entries: [NamedFile]) throws -> [ModTable] {
        try entries.map { entry in
            try withContext("--table \(entry.name)=\(entry.path)") {
                try NumPyArray(contentsOfFile: entry.path).table(named: entry.name)
            }
        }
    }

    /// The attention options of `--scale`, `--mask`, `--score` (reading `tables`) and `--sink`.
    static func attentionOptions(
        scale: Float?, mask: String?, score: String?, tables: [ModTable], sink: String?
    ) throws -> AttentionOptions {
        let sinks = try sink.map { path in
            try withContext("--sink \(path)") {
                let tensor = try Tensor(contentsOfNumPyFile: path)
                guard tensor.shape.count == 1, tensor.dtype == .float32 else {
                    throw CommandLineError("expected one <f4 logit per query head, [H], got \(tensor.dtype) \(tensor.shape)")
                }
                return tensor.floats()
            }
        }
        return AttentionOptions(
            scale: scale,
            mask: try mask.map { text in try withContext("--mask") { try MaskMod(parsing: text, tables: tables) } },
            scoreMod: try score.map { text in try withContext("--score") { try ScoreMod(parsing: text, tables: tables) } },
            sinks: sinks)
    }

    /// An input tensor of 4 dimensions, `<f4` or `<f2`; `layout` names its axes in the message when it has not.
    static func attentionTensor(_ path: String, option: String, layout: String = "[B, H, S, D]") throws -> Tensor {
        try withContext("\(option) \(path)") {
            let tensor = try Tensor(contentsOfNumPyFile: path)
            guard tensor.shape.count == 4 else {
                throw CommandLineError("expected 4 dimensions \(layout), got shape \(tensor.shape)")
            }
            return tensor
        }
    }
}

func parseScale(_ text: String) throws -> Float {
    guard let scale = Float(text), scale.isFinite else {
        throw CommandLineError("--scale takes a finite number, got '\(text)'")
    }
    return scale
}

/// `NAME=FILE` values, each name at most once.
func namedFiles(_ values: [String], option: String) throws -> [NamedFile] {
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
/// `body`'s error prefixed with `context`, so the message names the option or file at fault.
func withContext<T>(_ context: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw CommandLineError("\(context): \(error)")
    }
}

/// `body`'s error as a single line: messages can quote user text such as an expression holding a newline.
func oneLine<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        let text = "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
        throw CommandLineError(text)
    }
}
