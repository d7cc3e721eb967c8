import FlexAttention

/// `flexattn cuda-bench [--device cuda:N] [--causal] [--backward] B H S D [bf16|fp16]`: times the CUDA forward kernel
/// (with `--backward`, forward and backward) and prints milliseconds, TFLOP/s (4·B·H·S²·D, halved under causal,
/// times 3.5 with the backward) and each kernel's registers and spills.
func runCUDABench(arguments: [String]) throws -> Int32 {
    let usage = "usage: flexattn cuda-bench [--device cuda:N] [--causal] [--backward] B H S D [bf16|fp16]"
    var ordinal = 0
    var isCausal = false
    var backward = false
    var positional: [String] = []
    var remaining = arguments[...]
    while let argument = remaining.popFirst() {
        switch argument {
        case "--causal": isCausal = true
        case "--backward": backward = true
        case "--device":
            guard let value = remaining.popFirst(), value.hasPrefix("cuda"), let parsed = value == "cuda" ? 0 : Int(value.dropFirst(5))
            else { throw CUDAError.invalidArgument(usage) }
            ordinal = parsed
        default: positional.append(argument)
        }
    }
    let sizes = positional.prefix(4).compactMap { Int($0) }
    guard sizes.count == 4, sizes.allSatisfy({ $0 > 0 }) else { throw CUDAError.invalidArgument(usage) }
    let dtype: DType = positional.count > 4 && positional[4] == "fp16" ? .float16 : .bfloat16
    let device = try CUDADevice.open(ordinal)
    let result = try GPUTiming.measure(
        device: device, batch: sizes[0], heads: sizes[1], length: sizes[2], headDim: sizes[3],
        dtype: dtype, options: AttentionOptions(isCausal: isCausal), backward: backward)
    let milliseconds = (result.milliseconds * 1000).rounded() / 1000
    let teraflops = (result.teraflops * 10).rounded() / 10
    let problem = "B=\(sizes[0]) H=\(sizes[1]) S=\(sizes[2]) D=\(sizes[3]) \(dtype)\(isCausal ? " causal" : "")"
    print("\(backward ? "forward + backward" : "forward"): \(problem)  \(milliseconds) ms  \(teraflops) TFLOP/s")
    for kernel in result.kernels {
        print("  \(kernel.name): \(kernel.registers) registers, \(kernel.localMemory) B local")
    }
    return 0
}
