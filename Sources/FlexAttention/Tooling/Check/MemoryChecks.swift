extension CUDAConformance {
    typealias Check = (String, (inout SplitMix64) throws -> String?)

    func memoryChecks() -> [Check] {
        [
            ("memory: host to device to host, odd sizes", roundTrips),
            ("memory: fill, device to device copy at offsets", fillAndDeviceCopy),
            ("memory: async copies on a stream, timed with events", asyncCopies),
            ("memory: BSHD strided tensor views of each dtype", stridedTensors),
            ("memory: unowned view of a foreign device pointer", foreignPointer),
            ("memory: out-of-memory is an error", outOfMemory),
            ("memory: out-of-range copy is rejected", outOfRange),
        ]
    }

    private func roundTrips(_ random: inout SplitMix64) throws -> String? {
        for size in [1, 3, 4097, (1 << 20) + 3] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            let back = try DeviceBuffer(device: device, bytes: bytes).bytes()
            if back != bytes { return "\(size) bytes came back different" }
        }
        return nil
    }

    private func fillAndDeviceCopy(_ random: inout SplitMix64) throws -> String? {
        let source = try DeviceBuffer(device: device, byteCount: 1000)
        try source.fill(0xA5)
        let target = try DeviceBuffer(device: device, bytes: (0..<1000).map { UInt8($0 % 251) })
        try target.copy(from: source, sourceOffset: 10, toOffset: 100, count: 300)
        let expected = (0..<1000).map { 100..<400 ~= $0 ? 0xA5 : UInt8($0 % 251) }
        return try target.bytes() == expected ? nil : "bytes outside or inside the copied range are wrong"
    }

    private func asyncCopies(_ random: inout SplitMix64) throws -> String? {
        let stream = try CUDAStream(device: device)
        let (start, end) = (try CUDAEvent(device: device), try CUDAEvent(device: device))
        let bytes = (0..<(8 << 20)).map { _ in UInt8.random(in: 0...255, using: &random) }
        var back = [UInt8](repeating: 0, count: bytes.count)
        let buffer = try DeviceBuffer(device: device, byteCount: bytes.count)
        try start.record(on: stream)
        try bytes.withUnsafeBytes { try buffer.copy(from: $0, stream: stream) }
        try back.withUnsafeMutableBytes { try buffer.copy(to: $0, stream: stream) }
        try end.record(on: stream)
        try stream.synchronize()
        let milliseconds = try end.milliseconds(since: start)
        guard back == bytes else { return "bytes differ after the async round trip" }
        return milliseconds > 0 ? nil : "event timing gave \(milliseconds) ms"
    }

    private func stridedTensors(_ random: inout SplitMix64) throws -> String? {
        let shape = [2, 3, 5, 8]
        for dtype in DType.allCases {
            let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -4...4, using: &random) }
            let host = try Tensor(values, shape: shape, dtype: dtype, layout: .bshd)
            let device = try DeviceTensor(copying: host, to: device)
            let back = try device.copyToHost()
            guard back.strides == host.strides, back.floats() == host.floats() else {
                return "\(dtype) BSHD tensor came back different"
            }
            let transposed = try device.permuted([0, 2, 1, 3]).copyToHost()
            guard transposed.floats() == (try host.permuted([0, 2, 1, 3])).floats() else {
                return "\(dtype) permuted view reads different elements"
            }
        }
        return nil
    }

    private func foreignPointer(_ random: inout SplitMix64) throws -> String? {
        let owner = try DeviceBuffer(device: device, byteCount: 4096)
        try owner.fill(0)
        do {
            let borrowed = try DeviceBuffer(unowned: owner.address + 1024, byteCount: 1024, device: device)
            try borrowed.fill(7)
        }  // the borrowed buffer is gone; the owner's memory must still be valid
        let bytes = try owner.bytes()
        let expected = (0..<4096).map { 1024..<2048 ~= $0 ? UInt8(7) : 0 }
        return bytes == expected ? nil : "writes through the unowned buffer landed in the wrong place"
    }

    private func outOfMemory(_ random: inout SplitMix64) throws -> String? {
        do {
            _ = try DeviceBuffer(device: device, byteCount: 1 << 50)
            return "a 1 PiB allocation succeeded"
        } catch CUDAError.outOfMemory {
            return try DeviceBuffer(device: device, bytes: [1, 2, 3]).bytes() == [1, 2, 3]
                ? nil : "the device is unusable after an out-of-memory error"
        }
    }

    private func outOfRange(_ random: inout SplitMix64) throws -> String? {
        let buffer = try DeviceBuffer(device: device, byteCount: 16)
        var host = [UInt8](repeating: 0, count: 8)
        do {
            try host.withUnsafeMutableBytes { try buffer.copy(to: $0, fromOffset: 12) }
            return "a copy past the end was accepted"
        } catch CUDAError.invalidArgument {
            return nil
        }
    }
}
