/// The backward pass's preprocessing: `Delta[b, h, q] = Σ_c dO[b, h, q, c] · O[b, h, q, c]` in Float32, for any
/// dtype (O and dO share it), value dim and strides. Delta is the row's `Σ_k P dP`, which every dS needs.
///
/// A CTA takes ``rowBlock`` consecutive rows; a row's elements are split among the fewest lanes (a power of two)
/// that read it in one 16-byte load each, so a warp reads several short rows at once (D = 64 in 16-bit: four rows
/// of eight lanes) and every load is a whole 16 bytes. A warp per row with 8-byte loads left most lanes idle at
/// D = 64 and reached a quarter of the memory bandwidth (177 µs for 134 MB on an H200, notes/hopper.md, eighth pass).
///
/// When `blockRows` is not null it also writes, per (b, h) and block of ``rowBlock`` queries, the block's
/// LSE · log2 e (+∞ for rows that keep nothing and past the end, so their probabilities are 0), then its Delta (0
/// past the end): `2 · rowBlock` contiguous floats, which the Hopper dK/dV kernel copies beside each Q tile. It
/// then walks each (b, h)'s queries padded to whole blocks, and a CTA's rows are one such block.
struct DeltaKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 256
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
        // Elements per 16-byte load, and element k of the four 32-bit words `w` such a load gives.
        let perLoad = 16 / dtype.byteSize
        let element: (String) -> String = { w in
            dtype == .float32 ? "__uint_as_float(\(w)[k])" : dtype.cudaToFloat("(fa_u16)(\(w)[k / 2] >> (16 * (k % 2)))")
        }
        return CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                constexpr int RB = \(Self.rowBlock), V = \(perLoad);
                __shared__ float sums[RB];
                // Lanes per row: the power of two that covers the row in V-element loads, at most a warp.
                int lanes = 1;
                while (lanes < 32 && lanes * V < Dv) lanes *= 2;
                const int paddedSq = blockRows ? (Sq + RB - 1) / RB * RB : Sq, part = threadIdx.x % lanes;
                for (int r = threadIdx.x / lanes; r < RB; r += \(Self.threads) / lanes) {
                    const long long row = (long long)blockIdx.x * RB + r;
                    const int q = (int)(row % paddedSq);
                    const long long bh = row / paddedSq, b = bh / Hq, h = bh % Hq;
                    float sum = 0.0f;
                    if (row < rowCount && q < Sq) {
                        const \(dtype.cudaStorageType)* o = O + b * os0 + h * os1 + q * os2;
                        const \(dtype.cudaStorageType)* d = dO + b * ds0 + h * ds1 + q * ds2;
                        if (os3 == 1 && ds3 == 1 && Dv % V == 0 && (((fa_u64)o | (fa_u64)d) & 15) == 0) {
                            for (int c = V * part; c < Dv; c += V * lanes) {
                                const uint4 x = *(const uint4*)(o + c), y = *(const uint4*)(d + c);
                                const fa_u32 xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
                                #pragma unroll
                                for (int k = 0; k < V; ++k) sum += \(element("xs")) * \(element("ys"));
                            }
                        } else {
                            for (int c = part; c < Dv; c += lanes) sum += \(dtype.cudaToFloat("o[c * os3]")) * \(dtype.cudaToFloat("d[c * ds3]"));
                        }
                    }
                    // The row's lanes are adjacent in the warp, `lanes` dividing 32.
                    for (int offset = lanes / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
                    if (part == 0) sums[r] = sum;
                }
                __syncthreads();
                if (threadIdx.x >= RB) return;
                const long long row = (long long)blockIdx.x * RB + threadIdx.x;
                if (row >= rowCount) return;
                const int q = (int)(row % paddedSq);
                const long long bh = row / paddedSq;
                const float sum = sums[threadIdx.x];
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
