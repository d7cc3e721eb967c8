import Testing
@testable import FlexAttention

/// Every generated kernel's C signature and the arguments its launcher passes come from one parameter list; these
/// check, without a GPU, that each kernel declares exactly that list and that the arguments match it in count and
/// kind.
@Suite("Kernel signatures")
struct KernelSignatureTests {
    /// The parameters between `name(` and the matching `)`, split at top-level commas.
    static func declaredParameters(_ kernel: any GeneratedKernel) -> [String]? {
        guard let start = kernel.source.range(of: "\(kernel.name)(") else { return nil }
        var depth = 1
        var current = ""
        var parameters: [String] = []
        for character in kernel.source[start.upperBound...] {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            default: break
            }
            if depth == 0 { break }
            if character == "," && depth == 1 {
                parameters.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parameters.append(current)
        return parameters.map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
    }

    static func check<Operands>(_ kernel: any GeneratedKernel, _ signature: KernelSignature<Operands>, _ operands: Operands) {
        let declared = declaredParameters(kernel)
        #expect(declared == signature.parameters.map(\.declaration), "\(kernel.name)")
        let arguments = signature.arguments(operands)
        #expect(arguments.count == signature.parameters.count, "\(kernel.name)")
        for (parameter, argument) in zip(signature.parameters, arguments) {
            #expect(parameter.accepts(argument), "\(kernel.name): \(parameter.declaration) given \(argument)")
        }
    }

    static let tensor = TensorOperand(address: 0x1000, strides: [4096, 1024, 64, 1])
    static let maps = [CUDATensorMap](repeating: CUDATensorMap(words: .init(repeating: 0, count: 16)), count: 4)
    @Test("Forward, gradient, Delta, sink, merge and mod-grid kernels declare their parameters and get matching arguments")
    func everyKernelAgrees() throws {
        let shape = try AttentionShape(
            batch: 1, queryHeads: 2, keyValueHeads: 1, queryLength: 64, headDim: 64, dtype: .bfloat16)
        let shared = SharedOperands(
            sizes: AttentionSizes(shape, scale: 0.125), vectorLoads: true, blocks: BlockListOperand(),
            mask: ModOperands(ints: 1, floats: 2, tables: 3), scoreMod: ModOperands(ints: 4, floats: 5, tables: 6))
        var counts = (forward: 0, gradient: 0, delta: 0, grid: 0, logSumExp: 0)
        for kernel in try KernelCatalog.kernels() {
            switch kernel {
            case let kernel as any ForwardAttentionKernel:
                counts.forward += 1
                Self.check(kernel, kernel.signature, ForwardOperands(
                    tensorMaps: Self.maps, query: Self.tensor, key: Self.tensor, value: Self.tensor, output: Self.tensor,
                    logSumExp: 8, tileCounter: 9, shared: shared))
            case let kernel as any GradientAttentionKernel:
                counts.gradient += 1
                Self.check(kernel, kernel.signature, GradientOperands(
                    tensorMaps: Self.maps, query: Self.tensor, key: Self.tensor, value: Self.tensor,
                    outputGradient: Self.tensor, logSumExp: 8, delta: 9, blockRows: kernel.readsBlockRows ? 13 : 0,
                    gradients: [10, 11],
                    queryGradientSums: kernel.sumsQueryGradient
                        ? QueryGradientSumsOperand(sums: 14, turns: 15, blockTurns: 16) : QueryGradientSumsOperand(),
                    shared: shared, tableGradients: 12))
            case let kernel as QueryGradientFinishKernel:
                counts.delta += 1
                Self.check(kernel, QueryGradientFinishKernel.signature(kernel.dtype), QueryGradientFinishOperands(
                    sums: 8, turns: 9, adders: 11, queryGradient: 10, queryLength: 64, headDim: 64, scale: 0.125,
                    queryHeads: 2, keyBlocks: 3, maskBatchStride: 1, maskHeadStride: 0))
            case let kernel as DeltaKernel:
                counts.delta += 1
                Self.check(kernel, DeltaKernel.signature(kernel.dtype), DeltaOperands(
                    output: Self.tensor, outputGradient: Self.tensor, logSumExp: 8, delta: 9, blockRows: 10,
                    queryHeads: 2, queryLength: 64, valueDim: 64, rows: 128))
            case let kernel as SinkForwardKernel:
                counts.logSumExp += 1
                Self.check(kernel, SinkForwardKernel.signature(kernel.dtype), SinkForwardOperands(
                    output: Self.tensor, logSumExp: 8, sinks: 9, queryHeads: 2, queryLength: 64, valueDim: 64, rows: 128))
            case let kernel as TableGradientKernel:
                counts.delta += 1
                Self.check(kernel, TableGradientKernel.signature, TableGradientOperands(
                    sums: 8, gradient: 9, count: 300, adding: true))
            case let kernel as SinkGradientKernel:
                counts.logSumExp += 1
                Self.check(kernel, SinkGradientKernel.signature, SinkGradientOperands(
                    logSumExp: 8, delta: 9, sinks: 10, sinkGradient: 11, batch: 1, queryHeads: 2, queryLength: 64))
            case let kernel as MergeKernel:
                counts.logSumExp += 1
                let rows = MergeRows(output: Self.tensor, dtypeCode: 2, logSumExp: 8, logSumExpStrides: [128, 64, 1])
                Self.check(kernel, MergeKernel.signature, MergeOperands(
                    parts: [rows, rows, rows], merged: rows, queryHeads: 2, queryLength: 64, valueDim: 64, rows: 128))
            case let kernel as ModGridKernel:
                counts.grid += 1
                Self.check(kernel, ModGridKernel.signature, ModGridOperands(
                    output: 1, slopes: 2, scores: 3, grid: [1, 2, 3, 4], mod: ModOperands(ints: 4, floats: 5, tables: 6)))
            default:
                continue
            }
        }
        // Every family is represented: mma.sync, CUDA-core and Hopper forward and gradient kernels.
        // 3 Delta, 1 table finish, 2 dQ finish
        #expect(counts.forward >= 30 && counts.gradient >= 30 && counts.delta == 6 && counts.grid > 0)
        #expect(counts.logSumExp == 5, "three sink forward kernels, the sink gradient and the merge")
    }

    @Test("A parameter refuses an argument of another kind")
    func kindsAreChecked() {
        let parameter = KernelParameter<Int>.int32("n") { $0 }
        #expect(parameter.accepts(.int32(1)))
        #expect(!parameter.accepts(.int64(1)))
        #expect(!KernelParameter<Int>.pointer("p", "float") { UInt64($0) }.accepts(.float32(1)))
    }
}
