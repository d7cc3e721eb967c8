/// Stream-ordered memory, foreign streams and CUDA graphs on a real device. Work that must be ordered after
/// setup is queued on the check's own stream: synchronous copies run on the legacy default stream, which a
/// non-blocking stream does not wait for.
extension CUDAConformance {
    func streamChecks() -> [Check] {
        [
            ("streams: stream-ordered buffers, fill and copies round-trip bytes", streamOrderedRoundTrip),
            ("streams: stream-ordered buffers dropped with work still queued", droppedWithWorkQueued),
            ("streams: a new stream-ordered BSHD device tensor has Tensor's strides; bad shapes are refused",
             newDeviceTensor),
            ("streams: an unowned wrapper of a stream leaves it alive; 0 is the legacy default stream", unownedStream),
            ("streams: a 1 PiB stream-ordered allocation is out of memory", streamOrderedOutOfMemory),
            ("graphs: captured fills, 64-bit write, scratch allocation and copies replay on each launch", graphReplay),
            ("graphs: a capture whose body throws ends, and the stream stays usable", throwingCapture),
            ("graphs: a synchronous allocation inside a capture is an error", uncapturableCall),
        ]
    }

    private func streamOrderedRoundTrip(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        for size in [1, 4097, (1 << 20) + 3] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            var back = [UInt8](repeating: 0, count: size)
            do {
                let source = try DeviceBuffer(device: device, byteCount: size, stream: stream)
                let target = try DeviceBuffer(device: device, byteCount: size, stream: stream)
                try bytes.withUnsafeBytes { try source.copy(from: $0, stream: stream) }
                try target.fill(0x3C, stream: stream)
                try target.copy(from: source, count: size / 2, stream: stream)
                try back.withUnsafeMutableBytes { try target.copy(to: $0, stream: stream) }
            }  // both frees are queued after the copies
            try stream.synchronize()
            let expected = (0..<size).map { $0 < size / 2 ? bytes[$0] : 0x3C }
            if back != expected { return "\(size) bytes came back different" }
        }
        return nil
    }

    private func droppedWithWorkQueued(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        let size = 4 << 20
        let target = try DeviceBuffer(device: device, byteCount: 3 * size, stream: stream)
        for round in 0..<3 {
            // Each scratch buffer is freed on the stream right after its copy is queued, so the pool may hand
            // the next round the same memory: stream order must keep the rounds apart.
            let scratch = try DeviceBuffer(device: device, byteCount: size, stream: stream)
            try scratch.fill(UInt8(0x70 + round), stream: stream)
            try target.copy(from: scratch, toOffset: round * size, count: size, stream: stream)
        }
        var back = [UInt8](repeating: 0, count: target.byteCount)
        try back.withUnsafeMutableBytes { try target.copy(to: $0, stream: stream) }
        try stream.synchronize()
        for round in 0..<3 {
            let value = UInt8(0x70 + round)
            if back[(round * size)..<((round + 1) * size)].contains(where: { $0 != value }) {
                return "round \(round)'s bytes were overwritten or never written"
            }
        }
        return nil
    }

    private func newDeviceTensor(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        let shape = [2, 3, 5, 8]
        let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -4...4, using: &random) }
        let host = try Tensor(values, shape: shape, dtype: .bfloat16, layout: .bshd)
        let tensor = try DeviceTensor(device: device, dtype: .bfloat16, shape: shape, layout: .bshd, stream: stream)
        guard tensor.strides == host.strides, tensor.offset == 0, tensor.buffer.byteCount == host.storage.byteCount
        else {
            return "strides \(tensor.strides), \(tensor.buffer.byteCount) bytes; Tensor has \(host.strides)"
                + ", \(host.storage.byteCount) bytes"
        }
        try tensor.buffer.copy(
            from: UnsafeRawBufferPointer(start: host.storage.baseAddress, count: host.storage.byteCount),
            stream: stream)
        try stream.synchronize()
        guard try tensor.copyToHost().floats() == host.floats() else {
            return "the tensor read back different elements"
        }
        let refused: [([Int], TensorLayout)] = [([2, 0, 3, 4], .bhsd), ([2, 3, 4], .bshd), ([Int.max / 2, 3], .bhsd)]
        for (shape, layout) in refused {
            do {
                _ = try DeviceTensor(device: device, dtype: .float32, shape: shape, layout: layout, stream: stream)
                return "shape \(shape) (\(layout)) was accepted"
            } catch CUDAError.invalidArgument {
                continue
            }
        }
        return nil
    }

    private func unownedStream(_ random: inout SplitMix64) throws -> String? {
        let owner = try CUDAStream(device: device)
        let buffer = try DeviceBuffer(device: device, byteCount: 4096, stream: owner)
        var back = [UInt8](repeating: 0, count: buffer.byteCount)
        do {
            let borrowed = CUDAStream(unowned: owner.address, device: device)
            guard borrowed.address == owner.address else { return "the wrapper has another handle" }
            try buffer.fill(1, stream: borrowed)
            try borrowed.synchronize()
        }  // the wrapper is gone; the stream must not be
        try buffer.fill(2, stream: owner)
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: owner) }
        try owner.synchronize()
        guard back.allSatisfy({ $0 == 2 }) else { return "work on the stream after its wrapper went did not run" }

        let legacy = CUDAStream(unowned: 0, device: device)
        try buffer.fill(3, stream: legacy)  // the legacy stream waits for nothing on `owner`, which is idle
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: legacy) }
        try legacy.synchronize()
        return back.allSatisfy({ $0 == 3 }) ? nil : "work on the legacy default stream did not run"
    }

    private func streamOrderedOutOfMemory(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        do {
            _ = try DeviceBuffer(device: device, byteCount: 1 << 50, stream: stream)
            return "a 1 PiB stream-ordered allocation succeeded"
        } catch CUDAError.outOfMemory(let call, _) {
            guard call == "cuMemAllocAsync" else { return "the error names \(call)" }
        }
        let buffer = try DeviceBuffer(device: device, byteCount: 3, stream: stream)
        var back = [UInt8](repeating: 0, count: 3)
        try buffer.fill(9, stream: stream)
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: stream) }
        try stream.synchronize()
        return back == [9, 9, 9] ? nil : "the stream is unusable after an out-of-memory error"
    }

    private func graphReplay(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        let size = 4096
        let source = try DeviceBuffer(device: device, byteCount: size, stream: stream)
        let target = try DeviceBuffer(device: device, byteCount: size, stream: stream)
        let word = UInt64.random(in: 0...UInt64.max, using: &random)
        var back = [UInt8](repeating: 0, count: size)

        /// Resets both buffers, runs `work` on the stream, and reads the target back.
        func run(_ work: () throws -> Void) throws -> [UInt8] {
            try source.fill(0, stream: stream)
            try target.fill(0xEE, stream: stream)
            try work()
            try back.withUnsafeMutableBytes { try target.copy(to: $0, stream: stream) }
            try stream.synchronize()
            return back
        }

        _ = try run {}
        let graph = try CUDAGraph.capture(on: stream) {
            try source.fill(0x11, stream: stream)
            try source.write(word, atByteOffset: 8, stream: stream)
            let scratch = try DeviceBuffer(device: device, byteCount: 1024, stream: stream)
            try scratch.fill(0x22, stream: stream)
            try target.copy(from: scratch, toOffset: 2048, count: 1024, stream: stream)
            try target.copy(from: source, count: 1024, stream: stream)
        }  // the scratch buffer's free is captured too
        guard try run({}).allSatisfy({ $0 == 0xEE }) else { return "capture ran the work instead of recording it" }

        let wordBytes = withUnsafeBytes(of: word.littleEndian) { Array($0) }
        let expected = (0..<size).map { index -> UInt8 in
            switch index {
            case 8..<16: wordBytes[index - 8]
            case 0..<1024: 0x11
            case 2048..<3072: 0x22
            default: 0xEE
            }
        }
        for launch in 1...2 {
            let bytes = try run { try graph.launch(on: stream) }
            if bytes != expected { return "launch \(launch) left different bytes" }
        }
        return nil
    }

    private struct DeliberateError: Error {}

    private func throwingCapture(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        let buffer = try DeviceBuffer(device: device, byteCount: 256, stream: stream)
        var back = [UInt8](repeating: 0, count: buffer.byteCount)
        try buffer.fill(1, stream: stream)
        do {
            _ = try CUDAGraph.capture(on: stream) {
                try buffer.fill(2, stream: stream)
                throw DeliberateError()
            }
            return "a capture whose body threw returned a graph"
        } catch is DeliberateError {
            // The body's own error, as documented.
        }
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: stream) }
        try stream.synchronize()
        guard back.allSatisfy({ $0 == 1 }) else { return "the abandoned capture's fill ran" }

        let graph = try CUDAGraph.capture(on: stream) { try buffer.fill(3, stream: stream) }
        try graph.launch(on: stream)
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: stream) }
        try stream.synchronize()
        return back.allSatisfy({ $0 == 3 }) ? nil : "a capture after the abandoned one did not replay"
    }

    private func uncapturableCall(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        do {
            _ = try CUDAGraph.capture(on: stream) {
                _ = try DeviceBuffer(device: device, byteCount: 256)
            }
            return "a capture that called cuMemAlloc returned a graph"
        } catch CUDAError.driver(let call, _, _, _) where call.hasPrefix("cuMemAlloc") {
            // Refused, and the capture ended with the error.
        }
        let buffer = try DeviceBuffer(device: device, byteCount: 16, stream: stream)
        var back = [UInt8](repeating: 0, count: 16)
        try buffer.fill(5, stream: stream)
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: stream) }
        try stream.synchronize()
        return back.allSatisfy({ $0 == 5 }) ? nil : "the stream is unusable after the refused capture"
    }
}
