/// The backward pass's preprocessing: `Delta[b, h, q] = Σ_c dO[b, h, q, c] · O[b, h, q, c]` in Float32, one warp
/// per row, for any dtype (O and dO share it), value dim and strides. Delta is the row's `Σ_k P dP`, which every
/// dS needs.
///
/// When `blockRows` is not null it also writes, per (b, h) and block of ``rowBlock`` queries, the block's
/// LSE · log2 e (+∞ for rows that keep nothing and past the end, so their probabilities are 0), then its Delta (0
/// past the end): `2 · rowBlock` contiguous floats, which the Hopper dK/dV kernel copies beside each Q tile. It
/// then walks each (b, h)'s queries padded to whole blocks.
struct DeltaKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 128
    static let rowsPerBlock = threads / 32
    static let rowBlock = 64

    /// Rows the kernel walks: `B · Hq · Sq`, or with block rows every (b, h)'s queries padded to whole blocks.
    static func rowCount(batch: Int, heads: Int, queryLength: Int, blockRows: Bool) -> Int {
        batch * heads * (blockRows ? (queryLength + rowBlock - 1) / rowBlock * rowBlock : queryLength)
    }

    /// The block rows' size in floats.
    static func blockRowsCount(batch: Int, heads: Int, queryLength: Int) -> Int {
        2 * rowCount(batch: batch, heads: heads, queryLength: queryLength, blockRows: true)
    }

    var name: String { "fa_backward_delta_\(dtype)" }

    var source: String {
        // Contiguous rows are read 8 bytes per lane; `V` elements per load.
        let perLoad = 8 / dtype.byteSize
        func element(_ bits: String) -> String {
            dtype == .float32 ? "__uint_as_float((fa_u32)(\(bits) >> (32 * k)))" : dtype.cudaToFloat("(fa_u16)(\(bits) >> (16 * k))")
        }
        return CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                constexpr int RB = \(Self.rowBlock);
                const long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32;
                if (row >= rowCount) return;
                const int paddedSq = blockRows ? (Sq + RB - 1) / RB * RB : Sq, q = (int)(row % paddedSq);
                const long long bh = row / paddedSq, b = bh / Hq, h = bh % Hq;
                float sum = 0.0f;
                if (q < Sq) {
                    const \(dtype.cudaStorageType)* o = O + b * os0 + h * os1 + q * os2;
                    const \(dtype.cudaStorageType)* d = dO + b * ds0 + h * ds1 + q * ds2;
                    constexpr int V = \(perLoad);
                    if (os3 == 1 && ds3 == 1 && Dv % V == 0 && (((fa_u64)o | (fa_u64)d) & 7) == 0) {
                        for (int c = V * (threadIdx.x % 32); c < Dv; c += 32 * V) {
                            const fa_u64 x = *(const fa_u64*)(o + c), y = *(const fa_u64*)(d + c);
                            #pragma unroll
                            for (int k = 0; k < V; ++k) sum += \(element("x")) * \(element("y"));
                        }
                    } else {
                        for (int c = threadIdx.x % 32; c < Dv; c += 32) sum += \(dtype.cudaToFloat("o[c * os3]")) * \(dtype.cudaToFloat("d[c * ds3]"));
                    }
                    #pragma unroll
                    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
                }
                if (threadIdx.x % 32 != 0) return;
                if (q < Sq) Delta[bh * Sq + q] = sum;
                if (blockRows) {
                    float* const rows = blockRows + (bh * (paddedSq / RB) + q / RB) * 2 * RB;
                    const float lse = q < Sq ? LSE[bh * Sq + q] : fa_negative_infinity();
                    rows[q % RB] = lse == fa_negative_infinity() ? __int_as_float(0x7f800000) : lse * 1.4426950408889634f;
                    rows[RB + q % RB] = sum;
                }
            }

            """
    }
}

extension DeltaKernel {
    /// Its parameters (``AttentionSignatures/delta(storage:)``) for `dtype`'s inputs.
    static func signature(_ dtype: DType) -> KernelSignature<DeltaOperands> {
        AttentionSignatures.delta(storage: dtype.cudaStorageType)
    }
}
