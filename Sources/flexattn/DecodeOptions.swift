import ArgumentParser
import FlexAttention

extension Flexattn {
    /// `flexattn decode`: the options as given, each single-valued one refused when given twice (as by ``Run``).
    struct Decode: ParsableCommand {
        static let usage = """
            flexattn decode --q Q.npy --k-cache K.npy --v-cache V.npy --lengths L.npy [--block-table T.npy]
                            --out O.npy [--lse LSE.npy] [--scale X] [--mask EXPR] [--score EXPR] [--table NAME=F.npy]...
                            [--sink S.npy] [--device cpu|cuda]
            """
        static let configuration = CommandConfiguration(
            abstract: "One decoding step over .npy files: new queries against a contiguous or paged KV cache.",
            usage: usage)

        @Option(name: .customLong("q"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The new queries, [B, Hq, Sq, D], <f4 or <f2, at positions L[b]-Sq … L[b]-1.",
                                   valueName: "Q.npy"))
        var query: [String] = []
        @Option(name: .customLong("k-cache"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The key cache: [B, Hkv, Smax, D], or pages [P, pageSize, Hkv, D] with --block-table.",
                                   valueName: "K.npy"))
        var keyCache: [String] = []
        @Option(name: .customLong("v-cache"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The value cache, as the key cache with Dv.", valueName: "V.npy"))
        var valueCache: [String] = []
        @Option(name: .customLong("lengths"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Tokens in each sequence's cache, new ones included, [B] <i4 or <i8.",
                                   valueName: "L.npy"))
        var lengths: [String] = []
        @Option(name: .customLong("block-table"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The pages of each sequence, [B, maxPages] <i4: token t of b is in page T[b, t / pageSize].",
                                   valueName: "T.npy"))
        var blockTable: [String] = []
        @Option(name: .customLong("out"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The output to write, [B, Hq, Sq, Dv] <f4.", valueName: "O.npy"))
        var output: [String] = []
        @Option(name: .customLong("lse"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The log-sum-exp to write, [B, Hq, Sq] <f4, the sink included.", valueName: "LSE.npy"))
        var logSumExp: [String] = []
        @Option(name: .customLong("scale"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("The score scale, a finite number (default 1/√D).", valueName: "X"))
        var scale: [String] = []
        @Option(name: .customLong("mask"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A mask expression; q and kv are positions in the sequence, q_len = kv_len = L[b].",
                                   valueName: "EXPR"))
        var mask: [String] = []
        @Option(name: .customLong("score"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A score mod expression, with the mask's positions.", valueName: "EXPR"))
        var score: [String] = []
        @Option(name: .customLong("table"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("A table the expressions read by NAME (repeatable).", valueName: "NAME=FILE.npy"))
        var tables: [String] = []
        @Option(name: .customLong("sink"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Attention sinks: one logit per query head, [Hq] <f4.", valueName: "S.npy"))
        var sink: [String] = []
        @Option(name: .customLong("device"), parsing: .unconditionalSingleValue,
                help: ArgumentHelp("Where to compute (default cpu).", valueName: "cpu|cuda|cuda:N"))
        var device: [String] = []

        func run() throws {
            try DecodeCommand(options: try DecodeOptions(self)).execute()
        }
    }
}

/// The command line of `flexattn decode`, checked before any file is read.
struct DecodeOptions {
    let query: String
    let keyCache: String
    let valueCache: String
    let lengths: String
    let blockTable: String?
    let output: String
    let logSumExp: String?
    let scale: Float?
    let mask: String?
    let score: String?
    let tables: [NamedFile]
    let sink: String?
    let device: Device

    init(_ command: Flexattn.Decode) throws {
        func required(_ values: [String], _ name: String) throws -> String {
            guard let value = try single(values, name) else { throw CommandLineError("\(name) is required") }
            return value
        }
        query = try required(command.query, "--q")
        keyCache = try required(command.keyCache, "--k-cache")
        valueCache = try required(command.valueCache, "--v-cache")
        lengths = try required(command.lengths, "--lengths")
        blockTable = try single(command.blockTable, "--block-table")
        output = try required(command.output, "--out")
        logSumExp = try single(command.logSumExp, "--lse")
        scale = try single(command.scale, "--scale").map(parseScale)
        mask = try single(command.mask, "--mask")
        score = try single(command.score, "--score")
        tables = try namedFiles(command.tables, option: "--table")
        sink = try single(command.sink, "--sink")
        device = try parseDevice(try single(command.device, "--device") ?? "cpu")
    }

    /// Every file the command writes.
    var outputPaths: [String] { [output] + [logSumExp].compactMap { $0 } }
}
