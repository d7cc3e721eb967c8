import FlexAttentionSIMD

/// ``TileKernels`` compiled for AVX-512 (x86-64-v4): 32 registers of 16 lanes, so a 4 × 64 accumulator block.
/// Use only where the CPU reports AVX-512; on other architectures this module builds for the baseline.
public enum AVX512TileKernels: TileKernels {
    public static func perform(_ operation: TileOperation) {
        SIMDTileKernels<FourVectors<SIMD16<Float>>, TwoVectors<SIMD16<Float>>, OneVector<SIMD16<Float>>>
            .perform(operation)
    }
}
