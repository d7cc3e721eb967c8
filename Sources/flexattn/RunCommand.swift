import FlexAttention

/// `flexattn run`: attention over `.npy` files, forward and optionally backward.
///
/// The output paths are checked first, then everything is read, checked and computed before anything is written,
/// and the outputs are written all or nothing (see ``OutputFiles``): a failure leaves no output file behind and
/// every file that was there as it was. An output may name an input (it is replaced after being read); two outputs
/// may not name one file. Outputs are Float32 whatever the input dtype, so nothing is rounded to Float16.
struct RunCommand: FileCommand {
    let options: RunOptions

    var outputPaths: [String] { options.outputPaths }

    /// Every output file's path and contents.
    func computeOutputs() throws -> [OutputFile] {
        let tables = try CommandInputs.tables(options.tables)
        for entry in options.tableGradients {
            guard tables.first(where: { $0.name == entry.name })?.elementType == .float else {
                throw CommandLineError("--dtable \(entry.name): only Float (<f4) tables have gradients")
            }
        }
        let attentionOptions = try CommandInputs.attentionOptions(
            scale: options.scale, mask: options.mask, score: options.score, tables: tables, sink: options.sink)
        let query = try CommandInputs.attentionTensor(options.query, option: "--q")
        let key = try CommandInputs.attentionTensor(options.key, option: "--k")
        let value = try CommandInputs.attentionTensor(options.value, option: "--v")
        let outputGradient = try options.gradients.map { try CommandInputs.attentionTensor($0.outputGradient, option: "--grad-out") }

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
}
