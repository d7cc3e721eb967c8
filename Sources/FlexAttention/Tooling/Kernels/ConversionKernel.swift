/// A kernel that narrows floats to a 16-bit dtype and widens them back, to check the prelude's conversions against
/// the CPU's ``BFloat16`` and `Float16`.
///
/// Signature: `fa_convert_<dtype>(const float* in, <storage>* narrow, float* wide, long long count)`.
package struct ConversionKernel: Sendable {
    package let dtype: DType
    package static let threadsPerBlock = 256

    package init(dtype: DType) {
        self.dtype = dtype
    }

    package var name: String { "fa_convert_\(dtype)" }

    package var source: String {
        CUDAPrelude.source + """
            extern "C" __global__ void \(name)(const float* __restrict__ in, \(dtype.cudaStorageType)* __restrict__ narrow,
                                              float* __restrict__ wide, long long count) {
                const long long i = fa_global_index();
                if (i >= count) return;
                const \(dtype.cudaStorageType) stored = \(dtype.cudaFromFloat("in[i]"));
                narrow[i] = stored;
                wide[i] = \(dtype.cudaToFloat("stored"));
            }

            """
    }
}

/// A kernel that fills and reads back more dynamic shared memory than the default 48 KB limit, to check that a
/// kernel's limit can be raised (``CUDAFunction/setMaxDynamicSharedMemory(_:)``).
///
/// Signature: `fa_shared_memory_probe(unsigned* out, int words)`: one block writes `words` shared words, reverses
/// them through shared memory and writes `out[i] = words - 1 - i`.
package struct SharedMemoryProbeKernel: Sendable {
    package init() {}

    package var name: String { "fa_shared_memory_probe" }

    package var source: String {
        CUDAPrelude.source + """
            extern "C" __global__ void \(name)(fa_u32* __restrict__ out, int words) {
                extern __shared__ fa_u32 shared[];
                for (int i = threadIdx.x; i < words; i += blockDim.x) shared[i] = (fa_u32)i;
                __syncthreads();
                for (int i = threadIdx.x; i < words; i += blockDim.x) out[i] = shared[words - 1 - i];
            }

            """
    }
}
