import FlexAttention

/// `flexattn bench --device cuda`: the CUDA forward pass, and forward + backward, on the FlashAttention papers' shapes (hidden H·D = 2048,
/// B·S = 16384, S ∈ {2048, 8192, 16384}, D ∈ {64, 128}, and S = 8192 at D = 256, causal or not) and on patterns only FlexAttention
/// expresses (B=2, H=16, S=8192, D=128), bf16, through the public device API (an ``AttentionPlan`` per row, device
/// tensors, outputs allocated once, one stream). TFLOP/s count 4·B·H·D per kept score, so sparsity is no free
/// credit. The last column times forward + backward with ``AttentionOptions/deterministicGradients`` false (dQ
/// added in any order, as cuDNN's backward does). `scripts/gpu_anchors.py` times PyTorch on the same rows.
struct GPUBenchmark {
    let ordinal: Int

    struct Row {
        let name: String, batch: Int, heads: Int, length: Int, headDim: Int
        let options: AttentionOptions
        /// Scores kept per (batch, head); `nil` for all, or half under causal.
        var keptScores: Double?
    }

    static func rows() throws -> [Row] {
        var rows: [Row] = []
        for (length, headDim) in [(2048, 64), (8192, 64), (16384, 64), (2048, 128), (8192, 128), (16384, 128), (8192, 256)] {
            for isCausal in [false, true] {
                rows.append(Row(
                    name: isCausal ? "causal" : "dense", batch: 16384 / length, heads: 2048 / headDim,
                    length: length, headDim: headDim, options: AttentionOptions(isCausal: isCausal)))
            }
        }
        let n = 8192
        let window = 1024
        let documents = 16
        let documentLength = n / documents
        let ids = (0..<n).map { $0 / documentLength }
        let patterns: [(String, AttentionOptions, Double)] = [
            ("sliding window 1024", AttentionOptions(mask: .slidingWindow(window)),
             Double(window * (window + 1) / 2 + (n - window) * window)),
            ("16 documents, causal", AttentionOptions(mask: try .documentCausal(ids: ids)),
             Double(documents * documentLength * (documentLength + 1) / 2)),
            ("tanh soft-cap 30", AttentionOptions(scoreMod: .softCap(30)), Double(n) * Double(n)),
            ("ALiBi, causal", AttentionOptions(isCausal: true, scoreMod: try .alibi(heads: 16)),
             Double(n * (n + 1) / 2)),
        ]
        for (name, options, kept) in patterns {
            rows.append(Row(name: name, batch: 2, heads: 16, length: n, headDim: 128, options: options,
                            keptScores: kept))
        }
        return rows
    }

    func execute() throws -> String {
        let device = try CUDADevice.open(ordinal)
        var lines = [
            "flexattn bench: \(device.name), bf16; fwd+bwd credits 3.5× the forward's FLOPs",
            "pattern                   B   H      S    D  kept %   fwd ms  TFLOP/s  fwd+bwd ms  TFLOP/s  any-order ms  TFLOP/s",
        ]
        for row in try Self.rows() {
            var anyOrder = row.options
            anyOrder.deterministicGradients = false
            let timed = try [(row.options, false), (row.options, true), (anyOrder, true)].map { options, backward in
                try GPUTiming.measure(
                    device: device, batch: row.batch, heads: row.heads, length: row.length,
                    headDim: row.headDim, dtype: .bfloat16, options: options, keptScores: row.keptScores,
                    backward: backward)
            }
            let (forward, training, anyOrderTraining) = (timed[0], timed[1], timed[2])
            let all = Double(row.length) * Double(row.length)
            let kept = (row.keptScores ?? all * (row.options.isCausal ? 0.5 : 1)) / all
            lines.append(
                row.name.padding(22) + pad(row.batch, 5) + pad(row.heads, 4) + pad(row.length, 7)
                    + pad(row.headDim, 5) + pad(fixed(kept * 100, 1), 8) + pad(fixed(forward.milliseconds, 3), 9)
                    + pad(fixed(forward.teraflops, 1), 9) + pad(fixed(training.milliseconds, 3), 12)
                    + pad(fixed(training.teraflops, 1), 9) + pad(fixed(anyOrderTraining.milliseconds, 3), 14)
                    + pad(fixed(anyOrderTraining.teraflops, 1), 9))
        }
        return lines.joined(separator: "\n")
    }

    /// `--model`: one model step (32 layers of causal attention forward and backward, B=2 H=16 S=4096 D=128 bf16 or
    /// the `length` and `headDim` given, one plan) replayed as a CUDA graph against 32 single calls, then the host
    /// overhead per prepared call. Prints each line as it is measured.
    func executeModel(length: Int = 4096, headDim: Int = 128) throws {
        let device = try CUDADevice.open(ordinal)
        print("flexattn bench --model: \(device.name), bf16")
        let step = try GPUTiming.modelStep(
            device: device, layers: 32, batch: 2, heads: 16, length: length, headDim: headDim,
            options: AttentionOptions(isCausal: true))
        print("model step: 32 layers causal fwd+bwd B=2 H=16 S=\(length) D=\(headDim): graph \(fixed(step.step, 3)) ms,"
              + " 32 × single call \(fixed(32 * step.layer, 3)) ms (one call \(fixed(step.layer, 3)) ms),"
              + " ratio \(fixed(step.ratio, 4))")
        for backward in [false, true] {
            let overhead = try GPUTiming.overhead(device: device, backward: backward)
            print("overhead \(backward ? "fwd+bwd" : "fwd") B=1 H=1 S=128 D=64: host \(fixed(overhead.host, 2)) µs/call,"
                  + " gpu \(fixed(overhead.gpu, 2)) µs/call")
        }
    }
}
