extension CUDAConformance {
    func kernelChecks() -> [Check] {
        let conversions: [Check] = [DType.float16, .bfloat16].map { dtype in
            ("kernel: \(dtype) narrowing and widening match the CPU", { try self.conversion(dtype, &$0) })
        }
        let grids: [Check] = IndexExpression.samples().map { expression in
            ("kernel: \(expression.kind) expression \(expression.name) over an index grid",
             { try self.indexGrid(expression, &$0) })
        }
        return conversions + grids + [
            ("kernel: new constants reuse the compiled kernel", constantsAreArguments),
            ("kernel: 100 KB of dynamic shared memory", sharedMemoryAbove48KB),
        ]
    }

    private func conversion(_ dtype: DType, _ random: inout SplitMix64) throws -> String? {
        let specials: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, 65504, 65520, 1e-8, 3e38, .leastNonzeroMagnitude,
                                 Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000)]  // bf16 ties
        let inputs = specials + (0..<10_000).map { _ in
            Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &random))
        }
        let kernel = ConversionKernel(dtype: dtype)
        let function = try cache.function(kernel.name, source: kernel.source, on: device)
        let input = try upload(inputs)
        let narrow = try DeviceBuffer(device: device, byteCount: inputs.count * 2)
        let wide = try DeviceBuffer(device: device, byteCount: inputs.count * 4)
        let threads = ConversionKernel.threadsPerBlock
        try withExtendedLifetime(input) {
            try function.launch(
                grid: ((inputs.count + threads - 1) / threads, 1, 1), block: (threads, 1, 1),
                arguments: [.buffer(input), .buffer(narrow), .buffer(wide), .int64(Int64(inputs.count))])
            try device.synchronize()
        }
        let bits: [UInt16] = try download(narrow, count: inputs.count)
        let widened: [Float] = try download(wide, count: inputs.count)
        for (index, value) in inputs.enumerated() {
            let expected = dtype == .float16 ? Float16(value).bitPattern : BFloat16(value).bitPattern
            let expectedWide = dtype == .float16 ? Float(Float16(bitPattern: bits[index])) : BFloat16(bitPattern: bits[index]).float
            let sameBits = value.isNaN ? widened[index].isNaN : bits[index] == expected
            if !sameBits || (!value.isNaN && widened[index].bitPattern != expectedWide.bitPattern) {
                return "\(value) (0x\(String(value.bitPattern, radix: 16))) narrowed to 0x\(String(bits[index], radix: 16)),"
                    + " CPU gives 0x\(String(expected, radix: 16))"
            }
        }
        return nil
    }

    private func indexGrid(_ expression: IndexExpression, _ random: inout SplitMix64) throws -> String? {
        try evaluateGrid(expression, shape: (2, 3, 67, 131), &random).failure
    }

    private func constantsAreArguments(_ random: inout SplitMix64) throws -> String? {
        guard var window = IndexExpression.samples().first(where: { $0.name == "sliding_window" }) else {
            return "no sliding_window sample"
        }
        window.integerConstants = [17]
        let outcome = try evaluateGrid(window, shape: (1, 2, 40, 90), &random)
        if let failure = outcome.failure { return failure }
        return outcome.origin == .memory ? nil : "the kernel came from \(outcome.origin), not the memory cache"
    }

    /// Runs the expression's grid kernel on random scores and compares every element with the CPU evaluation:
    /// masks exactly, scores to 1e-5 relative (the GPU may fuse a multiply and an add).
    private func evaluateGrid(
        _ expression: IndexExpression, shape: (b: Int, h: Int, q: Int, kv: Int), _ random: inout SplitMix64
    ) throws -> (failure: String?, origin: KernelOrigin) {
        let kernel = IndexGridKernel(expression: expression)
        let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: device.architecture)
        let origin = try cache.cubin(for: request).origin
        let function = try cache.function(kernel.name, source: kernel.source, on: device)

        let count = shape.b * shape.h * shape.q * shape.kv
        let scores = (0..<count).map { _ in Float.random(in: -30...30, using: &random) }
        let output = try DeviceBuffer(device: device, byteCount: count * 4)
        try output.fill(0xFF)  // NaN: an element the kernel skips cannot pass
        let buffers = try [upload(scores), upload(expression.integerConstants + [0]), upload(expression.floatConstants + [0])]
            + expression.tables.map { try upload($0) }
        let threads = IndexGridKernel.threadsPerBlock
        // The inputs must outlive the kernel, not just the launch call.
        try withExtendedLifetime(buffers) {
            try function.launch(
                grid: ((shape.kv + threads - 1) / threads, shape.b * shape.h * shape.q, 1), block: (threads, 1, 1),
                arguments: [.buffer(output), .buffer(buffers[0])]
                    + [shape.b, shape.h, shape.q, shape.kv].map { .int32(Int32($0)) }
                    + buffers.dropFirst().map { .buffer($0) })
            try device.synchronize()
        }
        let values: [Float] = try download(output, count: count)

        var element = 0
        for b in 0..<shape.b { for h in 0..<shape.h { for q in 0..<shape.q { for kv in 0..<shape.kv {
            let expected = expression.evaluate(b, h, q, kv, scores[element], expression)
            let got = values[element]
            let tolerance = expression.kind == .mask ? 0 : 1e-5 * max(1, abs(expected))
            if !(abs(got - expected) <= tolerance) {
                return ("at [\(b), \(h), \(q), \(kv)] the GPU gives \(got), the CPU \(expected)", origin)
            }
            element += 1
        } } } }
        return (nil, origin)
    }

    private func sharedMemoryAbove48KB(_ random: inout SplitMix64) throws -> String? {
        let bytes = 100 * 1024
        guard device.maxSharedMemoryPerBlockOptIn >= bytes else {
            return "\(device.name) allows only \(device.maxSharedMemoryPerBlockOptIn) bytes of shared memory per block"
        }
        let kernel = SharedMemoryProbeKernel()
        let function = try cache.function(kernel.name, source: kernel.source, on: device)
        try function.setMaxDynamicSharedMemory(bytes)
        let words = bytes / 4
        let output = try DeviceBuffer(device: device, byteCount: bytes)
        try function.launch(
            grid: (1, 1, 1), block: (256, 1, 1), sharedMemory: bytes,
            arguments: [.buffer(output), .int32(Int32(words))])
        try device.synchronize()
        let values: [UInt32] = try download(output, count: words)
        return values == (0..<words).map { UInt32(words - 1 - $0) } ? nil : "shared memory read back wrong"
    }

    private func upload<Element>(_ values: [Element]) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(device: device, byteCount: values.count * MemoryLayout<Element>.stride)
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        return buffer
    }

    private func download<Element: ExpressibleByIntegerLiteral>(_ buffer: DeviceBuffer, count: Int) throws -> [Element] {
        var values = [Element](repeating: 0, count: count)
        try values.withUnsafeMutableBytes { try buffer.copy(to: $0) }
        return values
    }
}
