/// Emitted mods on the GPU against the CPU tile evaluators, element by element over an index grid.
extension CUDAConformance {
    func modGridChecks() -> [Check] {
        var generator = SplitMix64(seed: seed)
        let kernels: [ModGridKernel]
        do {
            kernels = try ModSamples.gridKernels(compositions: 6, using: &generator)
        } catch {
            return [("mods: sample mods build", { _ in "\(error)" })]
        }
        return kernels.map { kernel in
            ("mods: \(kernel.mod.kind) \(kernel.label) over an index grid", { try self.modGrid(kernel, &$0) })
        } + [("mods: new constants and tables reuse the compiled kernel", newValuesReuseKernel)]
    }

    private func modGrid(_ kernel: ModGridKernel, _ random: inout SplitMix64) throws -> String? {
        try evaluateGrid(kernel, shape: (2, 3, 67, ModSamples.length - 29), &random).failure
    }

    private func newValuesReuseKernel(_ random: inout SplitMix64) throws -> String? {
        let ids = (0..<ModSamples.length).map { $0 / 11 }
        let variants = [
            ModGridKernel(mask: .slidingWindow(48), label: "sliding_window"),
            ModGridKernel(mask: .slidingWindow(17), label: "sliding_window"),
            ModGridKernel(mask: try .documentCausal(ids: ids), label: "document_causal"),
            ModGridKernel(scoreMod: .softCap(5), label: "soft_cap"),
        ]
        for kernel in variants {
            let outcome = try evaluateGrid(kernel, shape: (1, 2, 40, 90), &random)
            if let failure = outcome.failure { return "\(kernel.label): \(failure)" }
            if outcome.origin != .memory { return "\(kernel.label) came from \(outcome.origin), not the memory cache" }
        }
        return nil
    }

    /// Runs the grid kernel on random scores and compares every element with the CPU evaluator: masks exactly,
    /// score values and slopes to 1e-4 relative (`expf`, `tanhf` and the CPU's vector exponential differ by ulps),
    /// slopes of random compositions to 1e-2: there the outer mod's derivative is taken at the inner mod's value,
    /// and derivatives such as that of `sqrt(abs(x))` near 0 or 1 − tanh² near saturation turn an ulp of
    /// difference in that value into an unbounded relative one. (The CPU derivatives themselves are checked
    /// against Float64 finite differences in the test suite.)
    private func evaluateGrid(
        _ kernel: ModGridKernel, shape: (b: Int, h: Int, q: Int, kv: Int), _ random: inout SplitMix64
    ) throws -> (failure: String?, origin: KernelOrigin) {
        let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: device.architecture)
        let origin = try cache.cubin(for: request).origin
        let function = try cache.function(for: kernel, on: device)

        let count = shape.b * shape.h * shape.q * shape.kv
        let scores = (0..<count).map { _ in Float.random(in: -30...30, using: &random) }
        let output = try DeviceBuffer(device: device, byteCount: count * 4)
        let slopes = try DeviceBuffer(device: device, byteCount: count * 4)
        try output.fill(0xFF)  // NaN: an element the kernel skips cannot pass
        let input = try DeviceBuffer(device: device, copying: scores)
        let arguments = try CUDAModArguments(kernel.mod.arguments, device: device)
        let threads = ModGridKernel.threadsPerBlock
        try withExtendedLifetime((input, arguments)) {
            try function.launch(
                grid: ((shape.kv + threads - 1) / threads, shape.b * shape.h * shape.q, 1), block: (threads, 1, 1),
                arguments: ModGridKernel.signature.arguments(ModGridOperands(
                    output: output.address, slopes: slopes.address, scores: input.address,
                    grid: [shape.b, shape.h, shape.q, shape.kv], mod: arguments.operands)))
            try device.synchronize()
        }
        let values: [Float] = try download(output, count: count)
        let gpuSlopes: [Float] = try download(slopes, count: count)
        let expected = try ModGridReference(kernel: kernel, shape: shape, scores: scores)
        let exact = kernel.mod.kind == .mask
        let slopeTolerance: Float = kernel.label.hasPrefix("composed") ? 1e-2 : 1e-4
        for element in 0..<count {
            let checks = exact
                ? [("value", values[element], expected.values[element], Float(0))]
                : [("value", values[element], expected.values[element], Float(1e-4)),
                   ("slope", gpuSlopes[element], expected.slopes[element], slopeTolerance)]
            for (what, got, want, tolerance) in checks where !Self.close(got, want, tolerance: tolerance) {
                let kv = element % shape.kv, row = element / shape.kv
                let at = "[\(row / (shape.q * shape.h)), \(row / shape.q % shape.h), \(row % shape.q), \(kv)]"
                return ("\(what) at \(at): the GPU gives \(got), the CPU \(want)", origin)
            }
        }
        return (nil, origin)
    }

    private static func close(_ got: Float, _ want: Float, tolerance: Float) -> Bool {
        if got == want || (got.isNaN && want.isNaN) { return true }
        return abs(got - want) <= tolerance * max(1, abs(want))
    }
}

/// The CPU's values for a grid, from ``MaskTileEvaluator`` and ``ScoreModTileEvaluator``, in the grid kernel's
/// `[B, H, Q, KV]` order.
private struct ModGridReference {
    var values: [Float]
    var slopes: [Float]

    init(kernel: ModGridKernel, shape: (b: Int, h: Int, q: Int, kv: Int), scores: [Float]) throws {
        let plane = shape.q * shape.kv
        values = [Float](repeating: 0, count: scores.count)
        slopes = values
        var tile = [Float](repeating: 0, count: plane)  // key-major, as ScoreTile holds it
        var slope = tile
        let mask = try kernel.mask.map { try MaskTileEvaluator($0, queryLength: shape.q, keyLength: shape.kv) }
        let scoreMod = try kernel.scoreMod.map { try ScoreModTileEvaluator($0, queryLength: shape.q, keyLength: shape.kv) }
        for b in 0..<shape.b {
            for h in 0..<shape.h {
                let base = (b * shape.h + h) * plane
                for q in 0..<shape.q { for kv in 0..<shape.kv { tile[kv * shape.q + q] = scores[base + q * shape.kv + kv] } }
                tile.withUnsafeMutableBufferPointer { values in
                    slope.withUnsafeMutableBufferPointer { slopes in
                        guard let pointer = values.baseAddress else { return }
                        let scoreTile = ScoreTile(
                            values: pointer, stride: shape.q, batch: b, head: h, queries: 0..<shape.q, keys: 0..<shape.kv)
                        mask?.mask(scoreTile)
                        scoreMod?.modify(scoreTile, derivative: slopes.baseAddress)
                    }
                }
                for q in 0..<shape.q {
                    for kv in 0..<shape.kv {
                        let value = tile[kv * shape.q + q]
                        values[base + q * shape.kv + kv] = kernel.mask == nil ? value : (value == -.infinity ? 0 : 1)
                        slopes[base + q * shape.kv + kv] = slope[kv * shape.q + q]
                    }
                }
            }
        }
    }
}
