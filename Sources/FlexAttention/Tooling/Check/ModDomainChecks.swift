/// Bad mod input on the GPU: a score mod or mask that indexes a table outside its bounds is refused with the CPU's
/// error, before anything runs, where the kernels would otherwise clamp the index silently.
extension CUDAConformance {
    func modDomainChecks() -> [Check] {
        guard let bias = try? FloatTable(name: "bias", values: [0, 0.5, 1, 1.5], shape: [4]),
              let ids = try? IntTable(name: "ids", values: [0, 1, 2, 3], shape: [4]) else {
            return [("bad mod input", { _ in "the sample tables failed to build" })]
        }
        // q − kv reaches 63 on a 64 × 64 problem: both index past their 4-entry tables.
        let cases = [
            AttentionOptions(scoreMod: ScoreMod { score, _, _, q, kv in score + bias[q - kv] }),
            AttentionOptions(mask: MaskMod { _, _, q, kv in ids[q - kv] >= 0 }),
        ]
        return cases.enumerated().map { index, options in
            ("bad mod input: \(index == 0 ? "score mod" : "mask") indexing past its table, the CPU's error", { random in
                let testCase = AttentionCase(
                    label: "", dtype: .float16, shape: (1, 2, 1, 64, 64, 64, 64), options: options)
                let tensors = try self.inputs(testCase, &random)
                func error(on device: Device) -> ModError? {
                    do {
                        _ = try Attention(device: device).forward(
                            query: tensors[0], key: tensors[1], value: tensors[2], options: options)
                        return nil
                    } catch {
                        return error as? ModError
                    }
                }
                let (cpu, gpu) = (error(on: .cpu), error(on: .cuda(self.device.ordinal)))
                guard let cpu else { return "the CPU ran the case" }
                // The element reported may differ with the block sizes the mask is analysed at; the table may not.
                guard case let .tableIndexOutOfRange(cpuTable, cpuAxis, _, _, _) = cpu,
                      case let .tableIndexOutOfRange(gpuTable, gpuAxis, _, _, _)? = gpu,
                      cpuTable == gpuTable, cpuAxis == gpuAxis else {
                    return "CPU: \(cpu); GPU: \(gpu.map { "\($0)" } ?? "ran")"
                }
                return nil
            })
        }
    }
}
