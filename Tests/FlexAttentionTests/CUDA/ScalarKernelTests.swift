import Testing
@testable import FlexAttention

@Suite("CUDA-core kernels")
struct ScalarKernelTests {
    @Test("the forward's largest head dim is what an A100's and an H100's shared memory hold")
    func largestHeadDim() {
        #expect(ScalarForwardKernel.largestHeadDim(sharedMemory: 166_912) == 521)
        #expect(ScalarForwardKernel.largestHeadDim(sharedMemory: 232_448) == 726)
    }

    @Test("the dQ kernel adds table gradients only for score mods that read Float tables")
    func tableGradients() throws {
        let bias = try ScoreMod.relativePositionBias([Float](repeating: 0, count: 6), heads: 2, maxDistance: 1)
        func source(_ scoreMod: ScoreMod) -> String {
            ScalarQueryGradientKernel(
                dtype: .float32, headDim: 64, valueDim: 64, mask: nil, scoreMod: CUDAModFunction(scoreMod: scoreMod)
            ).source
        }
        #expect(source(bias).contains("if (keep) fa_score_mod_table_gradients("))
        #expect(!source(.softCap(20)).contains("fa_score_mod_table_gradients"))
    }
}
