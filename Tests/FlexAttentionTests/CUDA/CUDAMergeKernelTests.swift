import Testing
@testable import FlexAttention

/// The device merge's launch plan and arguments, without a GPU (the GPU checks run it against
/// `AttentionOutput.merging`).
@Suite("CUDA merge of partial attention")
struct CUDAMergeKernelTests {
    @Test("eight parts in one launch; beyond, each launch carries the running result and up to seven more")
    func launches() {
        #expect(MergeKernel.partsPerLaunch == 8)
        #expect(MergeKernel.launches(parts: 1) == [0..<1])
        #expect(MergeKernel.launches(parts: 8) == [0..<8])
        #expect(MergeKernel.launches(parts: 9) == [0..<8, 8..<9])
        #expect(MergeKernel.launches(parts: 15) == [0..<8, 8..<15])
        #expect(MergeKernel.launches(parts: 16) == [0..<8, 8..<15, 15..<16])
        for parts in 1...40 {
            let launches = MergeKernel.launches(parts: parts)
            #expect(launches.first?.lowerBound == 0 && launches.last?.upperBound == parts)
            #expect(zip(launches, launches.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$1.isEmpty })
        }
    }

    @Test("parts past the launch's count are passed as null pointers, the count as given")
    func unusedPartsAreNull() {
        let tensor = TensorOperand(address: 0x1000, strides: [4096, 1024, 64, 1])
        let rows = MergeRows(output: tensor, dtypeCode: 1, logSumExp: 0x2000, logSumExpStrides: [128, 64, 1])
        let operands = MergeOperands(
            parts: [rows, rows], merged: rows, queryHeads: 2, queryLength: 64, valueDim: 64, rows: 128)
        let arguments = MergeKernel.signature.arguments(operands)
        var named: [String: KernelArgument] = [:]
        for (parameter, argument) in zip(MergeKernel.signature.parameters, arguments) {
            named[String(parameter.declaration.split(separator: " ").last ?? "")] = argument
        }
        func pointer(_ name: String) -> UInt64? {
            if case let .pointer(value)? = named[name] { value } else { nil }
        }
        #expect(pointer("O1") == 0x1000 && pointer("L1") == 0x2000)
        #expect((2..<MergeKernel.partsPerLaunch).allSatisfy { pointer("O\($0)") == 0 && pointer("L\($0)") == 0 })
        if case let .int32(count)? = named["parts"] { #expect(count == 2) } else { Issue.record("no parts count") }
        if case let .int32(code)? = named["O0dtype"] { #expect(code == 1) } else { Issue.record("no dtype code") }
    }

    @Test("dtype codes are those the kernel's load and store read")
    func dtypeCodes() {
        #expect([DType.float32, .float16, .bfloat16].map(\.mergeCode) == [0, 1, 2])
        #expect(MergeKernel().source.contains("(DType.mergeCode: 0 float32, 1 float16, 2 bfloat16)"))
    }
}
