extension CUDAConformance {
    func kernelChecks() -> [Check] {
        let conversions: [Check] = [DType.float16, .bfloat16].map { dtype in
            ("kernel: \(dtype) narrowing and widening match the CPU", { try self.conversion(dtype, &$0) })
        }
        return conversions + [("kernel: 100 KB of dynamic shared memory", sharedMemoryAbove48KB)]
    }

    private func conversion(_ dtype: DType, _ random: inout SplitMix64) throws -> String? {
        let specials: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, 65504, 65520, 1e-8, 3e38, .leastNonzeroMagnitude,
                                 Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000)]  // bf16 ties
        let inputs = specials + (0..<10_000).map { _ in
            Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &random))
        }
        let kernel = ConversionKernel(dtype: dtype)
        let function = try cache.function(for: kernel, on: device)
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

    private func sharedMemoryAbove48KB(_ random: inout SplitMix64) throws -> String? {
        let bytes = 100 * 1024
        guard device.maxSharedMemoryPerBlockOptIn >= bytes else {
            return "\(device.name) allows only \(device.maxSharedMemoryPerBlockOptIn) bytes of shared memory per block"
        }
        let kernel = SharedMemoryProbeKernel()
        let function = try cache.function(for: kernel, on: device)
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

    func upload<Element>(_ values: [Element]) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(device: device, byteCount: values.count * MemoryLayout<Element>.stride)
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        return buffer
    }

    func download<Element: ExpressibleByIntegerLiteral>(_ buffer: DeviceBuffer, count: Int) throws -> [Element] {
        var values = [Element](repeating: 0, count: count)
        try values.withUnsafeMutableBytes { try buffer.copy(to: $0) }
        return values
    }
}
