import FlexAttention

/// `flexattn run`: attention over `.npy` files, forward and optionally backward.
///
/// The output paths are checked first, then everything is read, checked and computed before anything is written,
/// and the outputs are written all or nothing (see ``OutputFiles``): a failure leaves no output file behind and
/// every file that was there as it was. An output may name an input (it is replaced after being read); two outputs
/// may not name one file. Outputs are Float32 whatever the input dtype, so nothing is rounded to Float16.
struct RunCommand {
    let options: RunOptions

    func execute() throws {
        try oneLine {
            _ = try OutputDestination.resolve(options.outputPaths)
            try OutputFiles.write(try computeOutputs())
        }
    }

    /// Every output file's path and contents.
    private func computeOutputs() throws -> [OutputFile] {
        let tables = try options.tables.map { entry in
            try withContext("--table \(entry.name)=\(entry.path)") {
                try NumPyArray(contentsOfFile: entry.path).table(named: entry.name)
            }
        }
        for entry in options.tableGradients {
            guard tables.first(where: { $0.name == entry.name })?.elementType == .float else {
                throw CommandLineError("--dtable \(entry.name): only Float (<f4) tables have gradients")
            }
        }
        let sinks = try options.sink.map { path in
            try withContext("--sink \(path)") {
                let tensor = try Tensor(contentsOfNumPyFile: path)
                guard tensor.shape.count == 1, tensor.dtype == .float32 else {
                    throw CommandLineError("expected one <f4 logit per query head, [H], got \(tensor.dtype) \(tensor.shape)")
                }
                return tensor.floats()
            }
        }
        let attentionOptions = AttentionOptions(
            scale: options.scale,
            mask: try options.mask.map { text in try withContext("--mask") { try MaskMod(parsing: text, tables: tables) } },
            scoreMod: try options.score.map { text in
                try withContext("--score") { try ScoreMod(parsing: text, tables: tables) }
            },
            sinks: sinks)
        let query = try loadTensor(options.query, option: "--q")
        let key = try loadTensor(options.key, option: "--k")
        let value = try loadTensor(options.value, option: "--v")
        let outputGradient = try options.gradients.map { try loadTensor($0.outputGradient, option: "--grad-out") }

        let attention = Attention(device: options.device)
        let forward = try attention.forward(
            query: query, key: key, value: value, options: attentionOptions, outputDType: .float32)
        var outputs = [(options.output, forward.output)]
        if let path = options.logSumExp { outputs.append((path, forward.logSumExp)) }
        if let files = options.gradients, let outputGradient {
            let gradients = try attention.backward(
                query: query, key: key, value: value, forward: forward, outputGradient: outputGradient,
                options: attentionOptions, gradientDType: .float32)
            outputs += [
                (files.query, gradients.query), (files.key, gradients.key), (files.value, gradients.value),
            ]
            for entry in options.tableGradients {
                guard let gradient = gradients.tableGradients[entry.name] else {
                    throw CommandLineError(
                        "--dtable \(entry.name): no gradient was computed for table \(entry.name) (no score mod reads it)")
                }
                outputs.append((entry.path, gradient))
            }
            if let path = options.sinkGradient, let gradient = gradients.sinkGradient { outputs.append((path, gradient)) }
        }
        return try outputs.map { try OutputFile(path: $0.0, tensor: $0.1) }
    }

    /// An input tensor: `[B, H, S, D]`, `<f4` or `<f2`.
    private func loadTensor(_ path: String, option: String) throws -> Tensor {
        try withContext("\(option) \(path)") {
            let tensor = try Tensor(contentsOfNumPyFile: path)
            guard tensor.shape.count == 4 else {
                throw CommandLineError("expected 4 dimensions [B, H, S, D], got shape \(tensor.shape)")
            }
            return tensor
        }
    }
}

/// `body`'s error prefixed with `context`, so the message names the option or file at fault.
private func withContext<T>(_ context: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw CommandLineError("\(context): \(error)")
    }
}

/// `body`'s error as a single line: messages can quote user text such as an expression holding a newline.
private func oneLine<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        let text = "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
        throw CommandLineError(text)
    }
}
