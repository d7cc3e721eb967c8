/// The backward pass's preprocessing: `Delta[b, h, q] = Σ_c dO[b, h, q, c] · O[b, h, q, c]` in Float32, one warp
/// per row, for any dtype (O and dO share it), value dim and strides. Delta is the row's `Σ_k P dP`, which every
/// dS needs.
struct DeltaKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 128
    static let rowsPerBlock = threads / 32

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
                const long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32;
                if (row >= rowCount) return;
                const long long b = row / ((long long)Hq * Sq), h = row / Sq % Hq, q = row % Sq;
                const \(dtype.cudaStorageType)* o = O + b * os0 + h * os1 + q * os2;
                const \(dtype.cudaStorageType)* d = dO + b * ds0 + h * ds1 + q * ds2;
                float sum = 0.0f;
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
                if (threadIdx.x % 32 == 0) Delta[row] = sum;
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
