/// Turns ``QueryGradientSums`` into dQ: `dQ[b, h, q, c] = scale · sums`, rounded to the inputs' dtype, and 0 for a
/// query block no key block added to; four columns per thread (D is a multiple of 16 on the Hopper path), so every
/// read is 16 bytes. dQ is contiguous.
struct QueryGradientFinishKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 256

    var name: String { "fa_backward_dq_finish_\(dtype)" }

    /// `sums, turns, dQ, Sq, D, scale, rows`: the sums' tiles and turn counters, dQ, and `rows = B · Hq · Sq`.
    static func signature(_ dtype: DType) -> KernelSignature<QueryGradientFinishOperands> {
        KernelSignature([
            .pointer("sums", "float") { $0.sums }, .pointer("turns", "int") { $0.turns },
            .pointer("dQ", dtype.cudaStorageType, readOnly: false) { $0.queryGradient },
            .int32("Sq") { $0.queryLength }, .int32("D") { $0.headDim }, .float32("scale") { $0.scale },
            .int64("rowCount") { $0.rows },
        ])
    }

    /// The grid for `rows` rows of `headDim` columns.
    static func blocks(rows: Int, headDim: Int) -> Int { max(1, (rows * headDim / 4 + threads - 1) / threads) }

    var source: String {
        let rows = QueryGradientSums.rows
        return CUDAPrelude.source + TensorCoreHelpers.source(dtype) + QueryGradientSums.indexFunction + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                const long long quad = (long long)blockIdx.x * \(Self.threads) + threadIdx.x, row = quad / (D / 4);
                if (row >= rowCount) return;
                const int column = 4 * (int)(quad % (D / 4)), q = (int)(row % Sq), columnBlocks = (D + 63) / 64;
                const long long block = row / Sq * ((Sq + \(rows - 1)) / \(rows)) + q / \(rows);
                const float4 sum = turns[block] > 0
                    ? *(const float4*)(sums + (block * columnBlocks + column / 64) * \(QueryGradientSums.tileFloats)
                                       + fa_dq_sums_index(q % \(rows), column % 64))
                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                *(uint2*)(dQ + row * D + column) = make_uint2(fa_pack(sum.x * scale, sum.y * scale), fa_pack(sum.z * scale, sum.w * scale));
            }

            """
    }
}

/// A ``QueryGradientFinishKernel`` launch's operands.
struct QueryGradientFinishOperands {
    var sums: UInt64
    var turns: UInt64
    var queryGradient: UInt64
    var queryLength: Int
    var headDim: Int
    var scale: Float
    var rows: Int
}
