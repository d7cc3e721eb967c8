/// Turns ``QueryGradientSums`` into dQ: `dQ[b, h, q, c] = scale · sums`, rounded to the inputs' dtype, and 0 for a
/// query block no key block added to. A CTA per query block, four columns per thread and step (D is a multiple of 16
/// on the Hopper path), so every read is 16 bytes. dQ is contiguous.
///
/// It is a ``ProgrammaticLaunch`` after the dK/dV kernel, whose CTAs let it start once they all run: its CTAs then
/// take the multiprocessors that the dK/dV kernel's last, uneven wave leaves idle. One thread per CTA waits until the
/// block's turn counter shows every key block's addition (the block's adders: `keyBlocks` without a block list, the
/// transposed list's `adders` with one), reading it ever less often: a block is rounded soon after its sums are
/// complete, without the waits crowding the counters the dK/dV kernel's turns read. One thread of the last CTA waits
/// for the dK/dV kernel to end (`griddepcontrol.wait`), so nothing queued later starts before it has.
struct QueryGradientFinishKernel: GeneratedKernel {
    let dtype: DType

    static let threads = 256

    var name: String { "fa_backward_dq_finish_\(dtype)" }

    /// Only the Hopper backward sums dQ, and the waits are sm_90 instructions (`griddepcontrol`, proxy fences).
    func compiles(for architecture: GPUArchitecture) -> Bool { architecture == .sm90a }

    /// `sums, turns, adders, dQ, Sq, D, scale, Hq, keyBlocks, maskBatchStride, maskHeadStride`: the sums' tiles and
    /// turn counters, the transposed block list's adders (null without a list), dQ, the dK/dV kernel's key blocks,
    /// and the list's multipliers of `b` and `h`. The grid has a CTA per query block (``blocks(batch:queryHeads:queryLength:)``).
    static func signature(_ dtype: DType) -> KernelSignature<QueryGradientFinishOperands> {
        KernelSignature([
            // Not restrict: the dK/dV kernel writes both while this one runs (its reads are `ld.acquire`, `ld.cg`).
            .pointer("sums", "float", restricted: false) { $0.sums }, .pointer("turns", "int", restricted: false) { $0.turns },
            .pointer("adders", "int") { $0.adders },
            .pointer("dQ", dtype.cudaStorageType, readOnly: false) { $0.queryGradient },
            .int32("Sq") { $0.queryLength }, .int32("D") { $0.headDim }, .float32("scale") { $0.scale },
            .int32("Hq") { $0.queryHeads }, .int32("keyBlocks") { $0.keyBlocks },
            .int32("maskBatchStride") { $0.maskBatchStride }, .int32("maskHeadStride") { $0.maskHeadStride },
        ])
    }

    /// The grid: one CTA per query block of every (batch, query head); none without queries.
    static func blocks(batch: Int, queryHeads: Int, queryLength: Int) -> Int {
        batch * queryHeads * QueryGradientSums.queryBlocks(queryLength: queryLength)
    }

    var source: String {
        let rows = QueryGradientSums.rows
        return CUDAPrelude.source + TensorCoreHelpers.source(dtype) + QueryGradientSums.indexFunction
            + QueryGradientSums.turnFunctions + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature(dtype).declaration)) {
                // The grid ends only after the dK/dV kernel has, so work queued after it sees dK and dV too.
                if (blockIdx.x == gridDim.x - 1 && threadIdx.x == 0) asm volatile("griddepcontrol.wait;" ::: "memory");
                const long long block = blockIdx.x;
                const int queryBlocks = (Sq + \(rows - 1)) / \(rows), q0 = (int)(block % queryBlocks) * \(rows);
                const int head = (int)(block / queryBlocks % Hq), b = (int)(block / queryBlocks / Hq);
                const int expected = adders
                    ? adders[((long long)b * maskBatchStride + (long long)head * maskHeadStride) * queryBlocks + q0 / \(rows)]
                    : keyBlocks;
                if (expected > 0 && threadIdx.x == 0) fa_await_turn(turns + block, expected, 2048);
                __syncthreads();
                const int columnBlocks = (D + 63) / 64, quads = D / 4;
                for (int i = threadIdx.x; i < \(rows) * quads; i += \(Self.threads)) {
                    const int r = i / quads, column = 4 * (i % quads);
                    if (q0 + r >= Sq) break;
                    const float4 sum = expected > 0
                        ? __ldcg((const float4*)(sums + (block * columnBlocks + column / 64) * \(QueryGradientSums.tileFloats)
                                                 + fa_dq_sums_index(r, column % 64)))
                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    const long long row = block / queryBlocks * Sq + q0 + r;
                    *(uint2*)(dQ + row * D + column) = make_uint2(fa_pack(sum.x * scale, sum.y * scale), fa_pack(sum.z * scale, sum.w * scale));
                }
            }

            """
    }
}

/// A ``QueryGradientFinishKernel`` launch's operands.
struct QueryGradientFinishOperands {
    var sums: UInt64
    var turns: UInt64
    /// The transposed block list's adders (``CUDABlockList/adders``), or 0 where every key block adds to every query block.
    var adders: UInt64
    var queryGradient: UInt64
    var queryLength: Int
    var headDim: Int
    var scale: Float
    var queryHeads: Int
    /// The dK/dV kernel's key blocks: every query block's adders without a list.
    var keyBlocks: Int
    var maskBatchStride: Int
    var maskHeadStride: Int
}
