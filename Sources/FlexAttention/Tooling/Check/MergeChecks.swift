/// The device merge of partial attention results, on a real device, against `AttentionOutput.merging` on host copies:
/// one launch and chained ones, mixed dtypes and strides, rows that a part or every part keeps nothing of, NaN rows;
/// into caller tensors, in place over a part, captured in a graph; and bad calls refused before anything is queued.
extension CUDAConformance {
    func mergeChecks() -> [Check] {
        [1, 2, 5, 11].map { count in
            ("merge: \(count) part\(count == 1 ? "" : "s") of mixed dtypes and strides against AttentionOutput.merging",
             { try self.mergeMatchesHost(count, &$0) })
        } + [("merge: into caller tensors, in place over the first part, and captured in a graph", mergeInto),
             ("merge: bad parts and merged tensors throw and queue nothing", mergeRefusals)]
    }

    /// `count` random results `[2, 3, 37, 72]`: O in bf16, f32, f16 by turns, BHSD and BSHD by turns; odd parts'
    /// log-sum-exps are strided views. Row 0 keeps nothing in every part, and other rows in some; where a part keeps
    /// nothing its O is NaN, which a merge must not read. Row 1 is NaN in the last part.
    private func mergeParts(_ count: Int, _ random: inout SplitMix64) throws -> [AttentionOutput] {
        let (b, h, s, dv) = (2, 3, 37, 72)
        let dtypes: [DType] = [.bfloat16, .float32, .float16]
        return try (0..<count).map { part in
            let values = (0..<b * h * s * dv).map { _ in Float.random(in: -2...2, using: &random) }
            let output = try Tensor(
                values, shape: [b, h, s, dv], dtype: dtypes[part % 3], layout: part % 2 == 0 ? .bhsd : .bshd)
            let rows = (0..<b * h * s).map { _ in Float.random(in: -3...3, using: &random) }
            let logSumExp = part % 2 == 0
                ? try Tensor(rows, shape: [b, h, s]) : try Tensor(rows, shape: [b, s, h]).permuted([0, 2, 1])
            let (os, ls) = (output.strides, logSumExp.strides)
            for bi in 0..<b {
                for hi in 0..<h {
                    for si in 0..<s {
                        let row = logSumExp.offset + bi * ls[0] + hi * ls[1] + si * ls[2]
                        if si == 0 || ((bi * h + hi) * s + si + part) % 7 == 0 {
                            logSumExp.store(-.infinity, atElementOffset: row)
                            let start = output.offset + bi * os[0] + hi * os[1] + si * os[2]
                            for c in 0..<dv { output.store(.nan, atElementOffset: start + c * os[3]) }
                        } else if si == 1 && part == count - 1 {
                            logSumExp.store(.nan, atElementOffset: row)
                        }
                    }
                }
            }
            return AttentionOutput(output: output, logSumExp: logSumExp)
        }
    }

    private func upload(_ parts: [AttentionOutput]) throws -> [DeviceAttentionOutput] {
        try parts.map {
            DeviceAttentionOutput(output: try DeviceTensor(copying: $0.output, to: device),
                                  logSumExp: try DeviceTensor(copying: $0.logSumExp, to: device))
        }
    }

    /// Compares a device merge with the host's, O to its dtype's precision.
    private func compareMerge(_ merged: DeviceAttentionOutput, _ want: AttentionOutput) throws -> String? {
        guard merged.output.dtype == want.output.dtype, merged.output.shape == want.output.shape,
              merged.logSumExp.shape == want.logSumExp.shape else {
            return "merged O is \(merged.output.dtype) \(merged.output.shape), expected \(want.output.dtype) \(want.output.shape)"
        }
        let tolerance: Float = want.output.dtype == .float32 ? 1e-5 : want.output.dtype == .float16 ? 2e-3 : 1e-2
        let (output, logSumExp) = (try merged.output.copyToHost().floats(), try merged.logSumExp.copyToHost().floats())
        return compare("O", output, want.output.floats(), tolerance: tolerance)
            ?? compare("LSE", logSumExp, want.logSumExp.floats(), tolerance: 1e-5)
    }

    private func mergeMatchesHost(_ count: Int, _ random: inout SplitMix64) throws -> String? {
        let parts = try mergeParts(count, &random)
        let stream = try CUDAStream(device: device)
        let merged = try DeviceAttentionOutput.merging(try upload(parts), on: stream)
        try stream.synchronize()
        return try compareMerge(merged, AttentionOutput.merging(parts))
    }

    private func mergeInto(_ random: inout SplitMix64) throws -> String? {
        let parts = try mergeParts(11, &random)
        let stream = try CUDAStream(device: device)
        let deviceParts = try upload(parts)
        let allocated = try DeviceAttentionOutput.merging(deviceParts, on: stream)
        try stream.synchronize()
        if let failure = try compareMerge(allocated, AttentionOutput.merging(parts)) { return failure }
        let want = try bytes([allocated.output, allocated.logSumExp])

        // In place: the first part's own tensors (a copy of it, so the others stay as they were).
        let first = try upload([parts[0]])[0]
        try DeviceAttentionOutput.merging([first] + deviceParts.dropFirst(), into: first, on: stream)
        try stream.synchronize()
        if try bytes([first.output, first.logSumExp]) != want { return "merging in place differs from a new result" }

        let target = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: .bfloat16, shape: allocated.output.shape, stream: stream),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: allocated.logSumExp.shape, stream: stream))
        try target.output.buffer.fill(0xFF, stream: stream)
        try target.logSumExp.buffer.fill(0xFF, stream: stream)
        let graph = try CUDAGraph.capture(on: stream) {
            try DeviceAttentionOutput.merging(deviceParts, into: target, on: stream)
        }
        try stream.synchronize()
        if try !arePoisoned([target.logSumExp]) { return "capturing ran the work" }
        for replay in 1...2 {
            try graph.launch(on: stream)
            try stream.synchronize()
            if try bytes([target.output, target.logSumExp]) != want { return "replay \(replay) differs from a direct call" }
        }
        return nil
    }

    private func mergeRefusals(_ random: inout SplitMix64) throws -> String? {
        let parts = try upload(mergeParts(2, &random))
        let stream = try CUDAStream(device: device)
        let shape = parts[0].output.shape
        let merged = DeviceAttentionOutput(
            output: try DeviceTensor(device: device, dtype: .float32, shape: shape, stream: stream),
            logSumExp: try DeviceTensor(device: device, dtype: .float32, shape: Array(shape.dropLast()), stream: stream))
        try merged.output.buffer.fill(0xFF, stream: stream)
        try merged.logSumExp.buffer.fill(0xFF, stream: stream)
        try stream.synchronize()
        let shorter = try DeviceTensor(
            buffer: parts[1].output.buffer, dtype: parts[1].output.dtype, shape: [2, 3, 36, 72],
            strides: parts[1].output.strides)
        let halfLogSumExp = try DeviceTensor(
            buffer: parts[1].output.buffer, dtype: .float16, shape: [2, 3, 37], strides: [111, 37, 1])
        let stridedLogSumExp = try DeviceTensor(
            buffer: merged.output.buffer, dtype: .float32, shape: [2, 3, 37], strides: [222, 74, 2])
        // Part 1's O (f32, BSHD) read as BHSD: the same memory, not the same view.
        let reread = try DeviceTensor(
            buffer: parts[1].output.buffer, dtype: .float32, shape: shape, strides: Tensor.contiguousStrides(shape))
        func merging(_ parts: [DeviceAttentionOutput], into target: DeviceAttentionOutput = merged) throws {
            try DeviceAttentionOutput.merging(parts, into: target, on: stream)
        }
        let calls: [(String, () throws -> Void)] = [
            ("no parts", { _ = try DeviceAttentionOutput.merging([], on: stream) }),
            ("parts of different shapes", {
                _ = try DeviceAttentionOutput.merging(
                    [parts[0], DeviceAttentionOutput(output: shorter, logSumExp: parts[1].logSumExp)], on: stream)
            }),
            ("a float16 log-sum-exp", {
                try merging([parts[0], DeviceAttentionOutput(output: parts[1].output, logSumExp: halfLogSumExp)])
            }),
            ("a strided merged log-sum-exp", {
                try merging(parts, into: DeviceAttentionOutput(output: merged.output, logSumExp: stridedLogSumExp))
            }),
            ("a merged O of another shape", {
                try merging(parts, into: DeviceAttentionOutput(output: shorter, logSumExp: merged.logSumExp))
            }),
            ("a merged O over a part's memory through another view", {
                try merging(parts, into: DeviceAttentionOutput(output: reread, logSumExp: merged.logSumExp))
            }),
        ]
        if let accepted = firstAccepted(calls) { return accepted }
        try stream.synchronize()
        let untouched = try arePoisoned([merged.output, merged.logSumExp])
        return untouched ? nil : "a refused call wrote an output"
    }
}
