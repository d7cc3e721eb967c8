/// Turns ``QueryGradientSums`` into dQ: `dQ[b, h, q, c] = scale · sums`, rounded to the inputs' dtype, and 0 for a
/// query block no key block added to; a warp per row, a pair of columns per lane. dQ is contiguous.
struct QueryGradientFinishKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 128
    static let rowsPerBlock = threads / 32

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

    /// The grid for `rows` rows.
    static func blocks(rows: Int) -> Int { max(1, (rows + rowsPerBlock - 1) / rowsPerBlock) }

    var source: String {
        let rows = QueryGradientSums.rows
        return CUDAPrelude.source + TensorCoreHelpers.source(dtype) + QueryGradientSums.indexFunction + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                const long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32;
                if (row >= rowCount) return;
                const int lane = threadIdx.x % 32, q = (int)(row % Sq), columnBlocks = (D + 63) / 64;
                const long long block = row / Sq * ((Sq + \(rows - 1)) / \(rows)) + q / \(rows);
                const bool added = turns[block] > 0;
                const float* const tiles = sums + block * columnBlocks * \(QueryGradientSums.tileFloats);
                for (int c = 0; c < columnBlocks; ++c) {
                    const int column = 64 * c + 2 * lane;
                    if (column >= D) break;
                    const float2 sum = added
                        ? *(const float2*)(tiles + c * \(QueryGradientSums.tileFloats) + fa_dq_sums_index(q % \(rows), 2 * lane))
                        : make_float2(0.0f, 0.0f);
                    *(fa_u32*)(dQ + row * D + column) = fa_pack(sum.x * scale, sum.y * scale);
                }
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
