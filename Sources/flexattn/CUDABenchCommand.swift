import ArgumentParser
import FlexAttention

extension Flexattn {
    struct CUDABench: ParsableCommand {
        static let usage = "flexattn cuda-bench [--device cuda:N] [--causal] [--backward] [--any-order] B H S D [bf16|fp16]"
        static let configuration = CommandConfiguration(
            commandName: "cuda-bench",
            abstract: "Times the CUDA forward kernel (and backward) on one shape; prints TFLOP/s, registers, spills.",
            usage: usage)

        /// The half-precision element types the kernels take.
        enum HalfPrecision: String, ExpressibleByArgument {
            case bf16, fp16
        }

        @Option(parsing: .unconditional, help: ArgumentHelp("The GPU.", valueName: "cuda[:N]"))
        var device = "cuda"
        @Flag(help: "A causal mask.")
        var causal = false
        @Flag(help: "Time the forward and backward passes.")
        var backward = false
        @Flag(help: "Let the backward add dQ in any order (deterministicGradients: false).")
        var anyOrder = false
        @Argument(help: ArgumentHelp("The batch size.", valueName: "B"))
        var batch: Int
        @Argument(help: ArgumentHelp("The number of heads.", valueName: "H"))
        var heads: Int
        @Argument(help: ArgumentHelp("The sequence length.", valueName: "S"))
        var length: Int
        @Argument(help: ArgumentHelp("The head dimension.", valueName: "D"))
        var headDim: Int
        @Argument(help: ArgumentHelp("The element type.", valueName: "bf16|fp16"))
        var dtype: HalfPrecision = .bf16

        func validate() throws {
            guard [batch, heads, length, headDim].allSatisfy({ $0 > 0 }) else {
                throw ValidationError("B, H, S and D must be positive")
            }
        }

        func run() throws {
            try runCUDABench(
                ordinal: try parseCUDAOrdinal(device), isCausal: causal, backward: backward,
                deterministicGradients: !anyOrder, sizes: [batch, heads, length, headDim],
                dtype: dtype == .fp16 ? .float16 : .bfloat16)
        }
    }
}

/// `flexattn cuda-bench [--device cuda:N] [--causal] [--backward] [--any-order] B H S D [bf16|fp16]`: times the CUDA
/// forward kernel (with `--backward`, forward and backward; with `--any-order`, dQ added in any order) and prints
/// milliseconds, TFLOP/s (4·B·H·S²·D, halved under causal, times 3.5 with the backward) and each kernel's registers
/// and spills.
func runCUDABench(
    ordinal: Int, isCausal: Bool, backward: Bool, deterministicGradients: Bool, sizes: [Int], dtype: DType
) throws {
    let device = try CUDADevice.open(ordinal)
    let result = try GPUTiming.measure(
        device: device, batch: sizes[0], heads: sizes[1], length: sizes[2], headDim: sizes[3], dtype: dtype,
        options: AttentionOptions(isCausal: isCausal, deterministicGradients: deterministicGradients), backward: backward)
    let milliseconds = (result.milliseconds * 1000).rounded() / 1000
    let teraflops = (result.teraflops * 10).rounded() / 10
    let problem = "B=\(sizes[0]) H=\(sizes[1]) S=\(sizes[2]) D=\(sizes[3]) \(dtype)\(isCausal ? " causal" : "")"
        + (deterministicGradients ? "" : " any-order")
    print("\(backward ? "forward + backward" : "forward"): \(problem)  \(milliseconds) ms  \(teraflops) TFLOP/s")
    for kernel in result.kernels {
        print("  \(kernel.name): \(kernel.registers) registers, \(kernel.localMemory) B local")
    }
}
