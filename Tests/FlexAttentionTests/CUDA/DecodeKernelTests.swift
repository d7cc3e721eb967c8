import Testing
@testable import FlexAttention

/// The decode kernels without a GPU: each declares the parameter list its launcher fills, and compiles.
@Suite("Decode kernels")
struct DecodeKernelTests {
    static let tensor = TensorOperand(address: 0x1000, strides: [4096, 1024, 64, 1])

    @Test("decode, combine and append kernels declare their parameter lists and get matching arguments")
    func signaturesAgree() throws {
        let mods = ModOperands(ints: 1, floats: 2, tables: 3)
        var counts = (decode: 0, combine: 0, append: 0)
        for kernel in try KernelCatalog.decodeKernels() {
            switch kernel {
            case let kernel as any DecodeAttentionKernel:
                counts.decode += 1
                KernelSignatureTests.check(kernel, kernel.signature, DecodeOperands(
                    query: Self.tensor, key: Self.tensor, value: Self.tensor, blockTable: 4, tableStride: 8,
                    pageSize: 16, lengths: 5, output: Self.tensor, logSumExp: 6, partialOutput: 7,
                    partialLogSumExp: 8, sinks: 9, queryHeads: 32, kvHeads: 8, queryLength: 1, splits: 4,
                    scale: 0.125, vectorLoads: true, mask: mods, scoreMod: mods))
            case let kernel as DecodeCombineKernel:
                counts.combine += 1
                KernelSignatureTests.check(kernel, kernel.signature, DecodeCombineOperands(
                    partialOutput: 1, partialLogSumExp: 2, sinks: 3, output: Self.tensor, logSumExp: 4, queryHeads: 32,
                    queryLength: 1, splits: 4, rows: 256))
            case let kernel as KVAppendKernel:
                counts.append += 1
                KernelSignatureTests.check(kernel, kernel.signature, KVAppendOperands(
                    newKeys: Self.tensor, newValues: Self.tensor, keys: Self.tensor, values: Self.tensor,
                    blockTable: 1, lengths: 2, patch: 3, batch: 2, kvHeads: 8, count: 1, headDim: 64, valueDim: 64,
                    pageSize: 16, tableStride: 4, patchCount: 0))
            default:
                Issue.record("unexpected kernel \(kernel.name) among the decode kernels")
            }
        }
        #expect(counts.decode >= 9 && counts.combine == 4 && counts.append == 6)
    }

    @Test(
        "decode kernels compile for sm_90a and sm_80",
        .enabled(if: CUDATestSupport.nvrtc != nil, CUDATestSupport.noNVRTCReason))
    func compile() throws {
        let nvrtc = try #require(CUDATestSupport.nvrtc)
        let cache = KernelCache(compiler: nvrtc, root: nil)
        for architecture in KernelCatalog.ciArchitectures {
            for kernel in try KernelCatalog.decodeKernels() {
                let request = KernelRequest(name: kernel.name, source: kernel.source, architecture: architecture)
                #expect(throws: Never.self, "\(kernel.name) for \(architecture)") { _ = try cache.cubin(for: request) }
            }
        }
    }

    @Test("the split plan fills one wave, keeps two blocks per split, and is 1 when the batch fills the GPU")
    func splitPlan() {
        // B=1, Hkv=8 at 128k on 132 SMs × 2: 33 splits of 62 blocks each.
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 8, capacity: 131_072, keyBlock: 64, residentCTAs: 264) == 33)
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 64, capacity: 32768, keyBlock: 64, residentCTAs: 264) == 4)
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 512, capacity: 32768, keyBlock: 64, residentCTAs: 264) == 1)
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 8, capacity: 1024, keyBlock: 64, residentCTAs: 264) == 8)
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 1, capacity: 128, keyBlock: 64, residentCTAs: 264) == 1)
        #expect(DecodeSplitPlanner.splits(ctasPerSplit: 1, capacity: 1 << 20, keyBlock: 64, residentCTAs: 264) == 128)
    }
}
