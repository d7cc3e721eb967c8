import Testing
@testable import FlexAttention

@Suite("Hopper kernels")
struct HopperKernelTests {
    private static let sharedMemory = 227 * 1024

    private func shape(_ dtype: DType, d: Int, dv: Int) throws -> AttentionShape {
        let query = try Tensor(zeros: [1, 4, 100, d], dtype: dtype)
        let value = try Tensor(zeros: [1, 2, 70, dv], dtype: dtype)
        return try AttentionShape(query: query, key: try Tensor(zeros: [1, 2, 70, d], dtype: dtype), value: value)
    }

    @Test("TMA reads 16-bit tensors with contiguous, 16-byte-aligned rows, whatever the layout")
    func tensorMapEligibility() {
        let bhsd = [4 * 100 * 64, 100 * 64, 64, 1], bshd = [100 * 4 * 64, 64, 4 * 64, 1]
        #expect(CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: bhsd, address: 4096))
        #expect(CUDATensorMap.canDescribe(dtype: .float16, shape: [2, 4, 100, 64], strides: bshd, address: 4096))
        // An axis of length 1 may have any stride: TMA is given a contiguous one.
        #expect(CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [1, 4, 100, 64], strides: [3, 6400, 64, 1], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .float32, shape: [2, 4, 100, 64], strides: bhsd, address: 4096))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: [25600, 6400, 1, 100], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 60], strides: [24000, 6000, 60, 1], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: bhsd, address: 4098))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: [0, 6400, 64, 1], address: 0))
    }

    @Test("the forward runs the Hopper kernel where tensor maps can be used, the mma.sync or CUDA-core one otherwise")
    func forwardSelection() throws {
        func kernel(_ dtype: DType, _ d: Int, _ dv: Int, tensorMaps: Bool) throws -> any AttentionKernel {
            try ForwardProgram.kernel(shape: shape(dtype, d: d, dv: dv), mask: CUDAModFunction(mask: .causal),
                                   scoreMod: nil, maxSharedMemory: Self.sharedMemory, tensorMaps: tensorMaps)
        }
        for (d, dv) in [(16, 16), (64, 64), (80, 80), (128, 64), (192, 192), (256, 256)] {
            let hopper = try kernel(.bfloat16, d, dv, tensorMaps: true)
            let mmaSync = try kernel(.bfloat16, d, dv, tensorMaps: false)
            #expect(hopper is HopperForwardKernel && hopper.readsTensorMaps, "D=\(d) Dv=\(dv)")
            #expect(mmaSync is MMAForwardKernel && !mmaSync.readsTensorMaps, "D=\(d) Dv=\(dv)")
        }
        let scalar = try kernel(.float32, 128, 128, tensorMaps: true)
        #expect(scalar is ScalarForwardKernel && !scalar.readsTensorMaps)
        #expect(try kernel(.float16, 72, 72, tensorMaps: true) is ScalarForwardKernel)
    }

    @Test("the backward runs both Hopper kernels up to head dim 128 and the mma.sync pair beyond")
    func backwardSelection() throws {
        func kernels(_ d: Int, _ dv: Int, tensorMaps: Bool) throws -> (keyValue: any AttentionKernel, query: any AttentionKernel) {
            try BackwardProgram.kernels(shape: shape(.bfloat16, d: d, dv: dv), mask: nil, scoreMod: nil,
                                     maxSharedMemory: Self.sharedMemory, tensorMaps: tensorMaps)
        }
        for (d, dv) in [(16, 16), (64, 64), (80, 80), (128, 64), (128, 128)] {
            let pair = try kernels(d, dv, tensorMaps: true)
            #expect(pair.keyValue is HopperKeyValueGradientKernel && pair.query is HopperQueryGradientKernel, "D=\(d)")
            #expect(pair.keyValue.readsTensorMaps && pair.query.readsTensorMaps, "D=\(d)")
        }
        for (d, dv, tensorMaps) in [(192, 192, true), (128, 256, true), (128, 128, false)] {
            let pair = try kernels(d, dv, tensorMaps: tensorMaps)
            #expect(pair.keyValue is MMAKeyValueGradientKernel && pair.query is MMAQueryGradientKernel, "D=\(d) Dv=\(dv)")
            #expect(!pair.keyValue.readsTensorMaps && !pair.query.readsTensorMaps, "D=\(d) Dv=\(dv)")
        }
    }

    @Test("every Hopper kernel fits an H100's shared memory, with fewer stages where the tiles are larger")
    func sharedMemoryFits() {
        let kernels = KernelCatalog.hopperKernels.compactMap { $0 as? any TensorCoreAttentionKernel }
        #expect(kernels.count == KernelCatalog.hopperKernels.count)
        for kernel in kernels {
            #expect(kernel.sharedMemoryBytes <= Self.sharedMemory, "\(kernel.name)")
            #expect(kernel.stages >= 1 && kernel.stages <= kernel.maxStages, "\(kernel.name)")
        }
        let forward = HopperForwardKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil)
        #expect(forward.fitting(maxSharedMemory: Self.sharedMemory).stages == 3)
        #expect(forward.fitting(maxSharedMemory: 200 * 1024).stages == 2)
        // The tiles start on a 1024-byte boundary: Q, then three stages of K, three of V, then the barriers (Q's,
        // and full and empty for each stage of both rings).
        #expect(forward.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 128 * 256 + 3 * 128 * 256 + 3 * 128 * 256 + 8 * 13)
        // The dK/dV kernel's stage holds Q, dO and the block's LSE and Delta, rounded up to 1024 bytes.
        let keyValue = HopperKeyValueGradientKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil)
        #expect(keyValue.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 2 * 128 * 256 + 3 * (2 * 64 * 256 + 1024) + 8 * 7)
    }

    @Test("the forward takes 192 query rows in three consumer warpgroups up to D = 64, and registers fit the file")
    func consumerGroups() {
        for (d, groups) in [(16, 3), (64, 3), (80, 2), (128, 2), (256, 2)] {
            let forward = HopperForwardKernel(dtype: .bfloat16, headDim: d, valueDim: d, mask: nil, scoreMod: nil)
            #expect(forward.consumerGroups == groups && forward.queryBlock == 64 * groups, "D=\(d)")
            #expect(forward.threads == 128 * (groups + 1), "D=\(d)")
        }
        let kernels = KernelCatalog.hopperKernels.compactMap { $0 as? any HopperAttentionKernel }
        #expect(kernels.count == KernelCatalog.hopperKernels.count)
        for kernel in kernels {
            // setmaxnreg wants multiples of 8, and the producer's and consumers' registers must fit 64K.
            #expect(kernel.consumerRegisters % 8 == 0 && kernel.consumerRegisters >= 128, "\(kernel.name)")
            #expect(128 * kernel.producerRegisters + 128 * kernel.consumerGroups * kernel.consumerRegisters < 65536,
                    "\(kernel.name)")
        }
    }

    @Test("the forward folds the scale into the softmax only for a positive scale and no score mod")
    func foldedScale() throws {
        func kernel(_ scoreMod: ScoreMod?, positive: Bool) throws -> HopperForwardKernel? {
            try ForwardProgram.kernel(
                shape: shape(.bfloat16, d: 128, dv: 128), mask: nil, scoreMod: scoreMod.map { CUDAModFunction(scoreMod: $0) },
                maxSharedMemory: Self.sharedMemory, tensorMaps: true, scaleIsPositive: positive) as? HopperForwardKernel
        }
        let folded = try #require(try kernel(nil, positive: true))
        let prescaled = try #require(try kernel(nil, positive: false))
        let modded = try #require(try kernel(.softCap(30), positive: true))
        #expect(folded.foldsScale && !prescaled.foldsScale && !modded.foldsScale)
        #expect(folded.name != prescaled.name && prescaled.name.contains("prescaled"))
        #expect(folded.source.contains("fa_online_softmax(s, r, rowMax[r], rowSum[r], scaleLog2)"))
        #expect(prescaled.source.contains("fa_online_softmax(s, r, rowMax[r], rowSum[r], 1.0f)"))
    }

    @Test("a wgmma form binds every accumulator and operand once")
    func wgmmaOperands() {
        for shape in [WGMMAShape(n: 64, aFromRegisters: false), WGMMAShape(n: 128, aFromRegisters: true),
                      WGMMAShape(n: 256, aFromRegisters: true)] {
            let source = shape.source("bf16")
            let operands = shape.n / 2 + (shape.aFromRegisters ? 6 : 3)
            #expect(source.contains("m64n\(shape.n)k16.f32.bf16.bf16"))
            #expect(source.contains("%\(operands - 1)") && !source.contains("%\(operands),") && !source.contains("%\(operands);"))
            #expect(source.components(separatedBy: "\"+f\"(d[").count - 1 == shape.n / 2)
        }
    }
}
