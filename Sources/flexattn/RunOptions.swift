import ArgumentParser
import FlexAttention

extension Flexattn {
    /// `flexattn run`: the options as given, checked by ``RunOptions`` before any file is read. ArgumentParser keeps
    /// the last value of an option given twice, so every option is collected as a list and ``RunOptions`` refuses a
    /// second value of a single-valued one. Values are taken as they are, even when they start with `-`.
    struct Run: ParsableCommand {
        static let usage = """
            flexattn run --q Q.npy --k K.npy --v V.npy --out O.npy [--lse LSE.npy] [--scale X] [--device cpu|cuda|cuda:N]
                         [--mask EXPR] [--score EXPR] [--table NAME=FILE.npy]...
                         [--sink S.npy] [--grad-out DO.npy --dq DQ.npy --dk DK.npy --dv DV.npy]
                         [--dtable NAME=FILE.npy]... [--dsink DS.npy]
            """
        static let configuration = CommandConfiguration(
            abstract: "Attention over .npy files, forward and optionally backward; all outputs or none are written.",
            usage: usage)

        @Option(name: .customLong("q"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The query, [B, H, S, D], <f4 or <f2.", valueName: "Q.npy"))
        var query: [String] = []
        @Option(name: .customLong("k"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The key, [B, Hkv, Skv, D]; H a multiple of Hkv.", valueName: "K.npy"))
        var key: [String] = []
        @Option(name: .customLong("v"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The value, the key's shape.", valueName: "V.npy"))
        var value: [String] = []
        @Option(name: .customLong("out"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The output to write, <f4.", valueName: "O.npy"))
        var output: [String] = []
        @Option(name: .customLong("lse"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The log-sum-exp of each row to write, [B, H, S] <f4.", valueName: "LSE.npy"))
        var logSumExp: [String] = []
        @Option(name: .customLong("scale"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The score scale, a finite number (default 1/√D).", valueName: "X"))
        var scale: [String] = []
        @Option(name: .customLong("device"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Where to compute (default cpu).", valueName: "cpu|cuda|cuda:N"))
        var device: [String] = []
        @Option(name: .customLong("mask"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A mask expression such as 'q >= kv'.", valueName: "EXPR"))
        var mask: [String] = []
        @Option(name: .customLong("score"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A score mod expression such as 'score + bias[h, q, kv]'.", valueName: "EXPR"))
        var score: [String] = []
        @Option(name: .customLong("table"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A table the expressions read by NAME (repeatable).", valueName: "NAME=FILE.npy"))
        var tables: [String] = []
        @Option(name: .customLong("grad-out"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The output's gradient to read: with --dq, --dk and --dv, a backward pass.",
                                   valueName: "DO.npy"))
        var outputGradient: [String] = []
        @Option(name: .customLong("dq"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The query's gradient to write.", valueName: "DQ.npy"))
        var queryGradient: [String] = []
        @Option(name: .customLong("dk"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The key's gradient to write.", valueName: "DK.npy"))
        var keyGradient: [String] = []
        @Option(name: .customLong("dv"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The value's gradient to write.", valueName: "DV.npy"))
        var valueGradient: [String] = []
        @Option(name: .customLong("dtable"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The gradient of the <f4 --table NAME to write (repeatable; needs a backward pass).",
                                   valueName: "NAME=FILE.npy"))
        var tableGradients: [String] = []
        @Option(name: .customLong("sink"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Attention sinks: one logit per query head joining each row's denominator, [H] <f4.",
                                   valueName: "S.npy"))
        var sink: [String] = []
        @Option(name: .customLong("dsink"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The sinks' gradient to write, [H] <f4 (needs --sink and a backward pass).",
                                   valueName: "DS.npy"))
        var sinkGradient: [String] = []

        func run() throws {
            try RunCommand(options: try RunOptions(self)).execute()
        }
    }
}

/// The command line of `flexattn run`, checked before any file is read.
struct RunOptions {
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
    /// Attention sinks to read, `[H]` `<f4`, and their gradient to write.
    let sink: String?
    let sinkGradient: String?

    /// Checks the options `command` was given.
    init(_ command: Flexattn.Run) throws {
        func required(_ values: [String], _ name: String) throws -> String {
            guard let value = try single(values, name) else { throw CommandLineError("\(name) is required") }
            return value
        }
        query = try required(command.query, "--q")
        key = try required(command.key, "--k")
        value = try required(command.value, "--v")
        output = try required(command.output, "--out")
        logSumExp = try single(command.logSumExp, "--lse")
        scale = try single(command.scale, "--scale").map(parseScale)
        device = try parseDevice(try single(command.device, "--device") ?? "cpu")
        mask = try single(command.mask, "--mask")
        score = try single(command.score, "--score")
        tables = try namedFiles(command.tables, option: "--table")
        tableGradients = try namedFiles(command.tableGradients, option: "--dtable")
        sink = try single(command.sink, "--sink")
        sinkGradient = try single(command.sinkGradient, "--dsink")

        let gradientOptions = [
            ("--grad-out", command.outputGradient), ("--dq", command.queryGradient), ("--dk", command.keyGradient),
            ("--dv", command.valueGradient),
        ]
        let missing = try gradientOptions.filter { try single($0.1, $0.0) == nil }.map(\.0)
        switch missing.count {
        case gradientOptions.count: gradients = nil
        case 0:
            gradients = GradientFiles(
                outputGradient: try required(command.outputGradient, "--grad-out"),
                query: try required(command.queryGradient, "--dq"), key: try required(command.keyGradient, "--dk"),
                value: try required(command.valueGradient, "--dv"))
        default:
            throw CommandLineError("--grad-out, --dq, --dk and --dv go together; missing \(missing.joined(separator: ", "))")
        }
        if gradients == nil, !tableGradients.isEmpty {
            throw CommandLineError("--dtable needs a backward pass (--grad-out, --dq, --dk and --dv)")
        }
        if sinkGradient != nil && (sink == nil || gradients == nil) {
            throw CommandLineError("--dsink needs --sink and a backward pass (--grad-out, --dq, --dk and --dv)")
        }
        for entry in tableGradients where !tables.contains(where: { $0.name == entry.name }) {
            throw CommandLineError("--dtable \(entry.name): no --table named \(entry.name)")
        }
    }

    /// Every file the command writes.
    var outputPaths: [String] {
        [output] + [logSumExp].compactMap { $0 }
            + [gradients?.query, gradients?.key, gradients?.value].compactMap { $0 } + tableGradients.map(\.path)
            + [sinkGradient].compactMap { $0 }
    }
}
