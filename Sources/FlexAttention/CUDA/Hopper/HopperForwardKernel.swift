/// The forward kernel for Hopper (sm_90a): `wgmma` matrix products on tiles that TMA copies into shared memory.
///
/// A CTA has `consumerGroups` warpgroups of 4 warps, each owning 64 query rows, and a producer warpgroup. The producer
/// copies the Q tile once and then the K and V tiles of each key block on the block list into a ring of `stages`
/// shared buffers, K and V in rings of their own: one thread issues the TMA copies, an `mbarrier` per stage says when
/// they have landed ("full") and another when every consumer thread is done with it ("empty"). The pipeline needs
/// two stages or more: a warpgroup holds step i − 1's V while it computes step i's scores.
///
/// Per key block a warpgroup computes S = Q Kᵀ with `wgmma` (Q from registers where they allow, else from shared
/// memory; K K-major in shared memory), applies the score mod, the mask on partial blocks and the online softmax in
/// base 2 on the accumulators in registers, and adds P V with P from registers and V MN-major. The products overlap
/// the softmax twice over (see `kernel`): within a warpgroup, and between warpgroups that take turns. Rows past `Sq`
/// and keys past `Skv` arrive as zeros; the same parameters as ``MMAForwardKernel`` follow the three tensor maps (Q,
/// K, V as 4-D `[B, H, S, D]` views, boxes of 64 columns), so one launcher drives both.
///
/// Head dims are multiples of 16 up to 256; tiles are padded to whole 64-column blocks, which TMA fills with zeros.
struct HopperForwardKernel: HopperAttentionKernel, ForwardAttentionKernel {
    let dtype: DType
    let headDim: Int
    let valueDim: Int
    let mask: CUDAModFunction?
    let scoreMod: CUDAModFunction?
    var stages = 3
    /// Whether the plan's scale is positive. Without a score mod the scores then stay unscaled until the softmax,
    /// whose exponent takes the scale in one FFMA (a positive factor keeps the row maximum where it was); with a
    /// scale ≤ 0, which would turn the maximum into the minimum and the masked −∞ into +∞, they are scaled first.
    var scaleIsPositive = true
    /// Whether a CTA runs tile after tile (``TileSchedule``); ``ForwardProgram`` chooses it by shape.
    var persistent = false

    /// Whether the scale is folded into the softmax (``scaleIsPositive``, no score mod).
    var foldsScale: Bool { scoreMod == nil && scaleIsPositive }

    /// Three warpgroups (192 query rows) where D and Dv are at most 64: their products are short, so a third
    /// group's softmax keeps the tensor cores fed, and S, O and P still fit the 160 registers three groups leave.
    var consumerGroups: Int { max(headDim, valueDim) <= 64 ? 3 : 2 }
    var queryBlock: Int { 64 * consumerGroups }
    /// 128 keys per block while S (64 floats per thread at 128 keys) and O fit the registers together; else 80, which
    /// two stages of K and V beside Q still fit at D = 256 (64 + 2 · 80 KB).
    var keyBlock: Int { paddedValueDim <= 128 ? 128 : 80 }
    /// The N of the P V product: Dv rounded up to a whole column block (the padding columns of V are zeros).
    var paddedValueDim: Int { 64 * valueColumnBlocks }
    /// Whether registers hold this group's rows of Q as the A operand of Q Kᵀ (32 per thread at D = 128), so the
    /// product reads only K from shared memory: where two groups leave 240 registers and S, O and P take 160 (three
    /// groups at D = 64 would spill, and D = 256 has no room), and no score mod needs registers of its own (with
    /// tanh soft-capping the forward ran 8% slower).
    var queryInRegisters: Bool { consumerGroups == 2 && keyColumnBlocks <= 2 && paddedValueDim <= 128 && scoreMod == nil }

    var readsTensorMaps: Bool { true }

    var name: String {
        "fa_hopper_forward_\(dtype)_d\(headDim)_dv\(valueDim)_st\(stages)" + (scoreMod == nil && !foldsScale ? "_prescaled" : "")
            + (persistent ? "_persistent" : "") + ModTags.suffix(mask: mask, scoreMod: scoreMod)
    }

    /// Q resident per tile (handed back on `residentEmpty`); K and V streamed through `stages` buffers.
    var pipeline: HopperPipeline {
        var pipeline = HopperPipeline(
            resident: [HopperTile(pointer: "sQ", map: "qMap", rows: queryBlock, columnBlocks: keyColumnBlocks)],
            rings: [HopperRing(tiles: [HopperTile(pointer: "sK", map: "kMap", rows: keyBlock, columnBlocks: keyColumnBlocks)]),
                    HopperRing(tiles: [HopperTile(pointer: "sV", map: "vMap", rows: keyBlock, columnBlocks: valueColumnBlocks)])],
            stages: stages, consumerWarps: 4 * consumerGroups)
        pipeline.handoffs = [pipeline.residentHandoff]
        pipeline.schedulesTiles = persistent
        return pipeline
    }

    /// The tiles (``TileSchedule``) in the order: bands of `bandHeads` heads
    /// (``headBand(for:multiprocessors:l2Bytes:)``), the short one first, then in a band query blocks longest first
    /// (later rows see more keys under causal), the band's heads of one query block together (GQA's heads that share K
    /// and V are neighbours), so the short tiles fill the tail.
    var tiles: TileSchedule {
        TileSchedule(persistent: persistent, setup: """
            const int pad = (bandHeads - heads % bandHeads) % bandHeads, band = (tile + pad * qBlocks) / (bandHeads * qBlocks);
                        const int firstHead = max(band * bandHeads - pad, 0), width = (band + 1) * bandHeads - pad - firstHead;
                        const int inBand = tile - firstHead * qBlocks, head = firstHead + inBand % width;
                        const int qBlock = qBlocks - 1 - inBand / width;
                        const int b = head / Hq, h = head % Hq, hkv = h / (Hq / Hkv);
                        const int q0 = qBlock * BM;
                        const int line = (b * maskBatchStride + h * maskHeadStride) * qBlocks + qBlock;
                        const fa_block_range range = fa_block_range_of(blockStarts, blockList, line, (Skv + BN - 1) / BN);
                        const int begin = range.begin, end = range.end;
            """)
    }

    var schedulesTiles: Bool { persistent }

    /// This kernel, persistent where that measured faster (notes/hopper.md, seventh pass): with three consumer groups
    /// (D, Dv ≤ 64), whose steps are short, and for up to 2048 keys, whose walks are.
    func scheduled(for shape: AttentionShape) -> Self {
        var kernel = self
        kernel.persistent = consumerGroups == 3 || shape.keyLength <= 2048
        return kernel
    }

    /// Query heads per band of the tile order (``tiles``) for `shape` on a device with `multiprocessors` and an L2
    /// of `l2Bytes`. The tiles in flight are a window of the order. In one order over all heads they cover a query
    /// block of every head, each tile streaming its head's K and V: at B = 8, H = 16, S = 2048, D = 128 that is 128 MB
    /// per round of tiles, from HBM. Bands keep the window on a few heads whose K and V stay in L2 (forward +3–8% at
    /// D = 128 and 256, notes/hopper.md, eleventh pass). A band holds the key/value heads whose K and V fit a third of
    /// the L2 (the window can span two bands, and data read from both halves of an H100's L2 may sit in both), but at
    /// least twice as many tiles as there are multiprocessors, so its longest walks start early enough to end with the
    /// rest (causal walks average half the longest); the short band goes first, since a short last band's longest
    /// walks would end alone (−8% at D = 256 causal). Three consumer groups (D, Dv ≤ 64) stream two thirds of the bytes
    /// per product and lost up to 6% under causal masks with bands: they keep one order.
    func headBand(for shape: AttentionShape, multiprocessors: Int, l2Bytes: Int) -> Int {
        let heads = shape.batch * shape.queryHeads, group = shape.groupSize
        guard consumerGroups == 2 else { return heads }
        let keyValueBytes = max(shape.keyLength * (shape.headDim + shape.valueDim) * shape.dtype.byteSize, 1)
        let fitting = l2Bytes / 3 / keyValueBytes * group
        let blocks = max(queryBlocks(shape), 1), filling = (2 * multiprocessors + blocks - 1) / blocks
        let band = (max(fitting, filling, 1) + group - 1) / group * group  // whole groups sharing K and V
        return min(band, heads)
    }

    func grid(_ shape: AttentionShape, multiprocessors: Int) -> (x: Int, y: Int) {
        let tiles = shape.batch * shape.queryHeads * queryBlocks(shape)
        return (self.tiles.grid(tiles: tiles, multiprocessors: multiprocessors), 1)
    }

    private var walk: (open: String, close: String) { HopperPipeline.keyBlockWalk(keyBlock: "BN", streamed: "streamed") }
    /// The rings' step for the tile's step `step`: they count on from the tiles before (`streamed`).
    private func ringStep(_ step: String) -> String { "streamed + \(step)" }
    private var turns: WarpgroupTurns { WarpgroupTurns(groups: consumerGroups) }
    /// The pipeline's rings: K, then V.
    private let keys = 0, values = 1

    var source: String {
        hopperPrelude([
            WGMMAShape(n: keyBlock, operands: queryInRegisters ? .registersKMajor : .kMajor),
            WGMMAShape(n: paddedValueDim, operands: .registers),
        ])
            + OnlineSoftmax.source + kernel
    }

    /// The loop that turns the raw products `s` into base-2 scores (or leaves them unscaled where the softmax folds
    /// the scale in), with the bounds check and mask or without.
    private func scores(checked: Bool) -> String {
        if foldsScale && !checked { return "" }
        let score = foldsScale ? "s[j][e]" : forwardScore("s[j][e]")
        return """
        #pragma unroll
                    for (int j = 0; j < BN / 8; ++j) {
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const int query = rows[e / 2], key = k0 + 8 * j + 2 * (lane % 4) + e % 2;
                            \(checked ? "const float x = " : "s[j][e] = ")\(score);
        """ + (checked ? """

                            const bool keep = \(ModKernelText.keep(mask: mask));
                            s[j][e] = keep ? x : fa_negative_infinity();
        """ : "") + """

                        }
                    }
        """
    }

    /// Issues step `i`'s S = Q Kᵀ into `s` (16 columns of D per wgmma) as one commit group.
    private var issueScores: String {
        let keys = pipeline.pointer(pipeline.rings[self.keys].tiles[0], stage: "(\(ringStep("i"))) % STAGES")
        let products = queryInRegisters
            ? HopperHelpers.registerKMajorProducts(n: keyBlock, accumulator: "s", operands: "qa", b: keys, bRows: "BN", depth: "D")
            : HopperHelpers.kMajorProducts(n: keyBlock, accumulator: "s", a: "groupQ", aRows: "BM", b: keys, bRows: "BN", depth: "D")
        return """
        \(products)
                    fa_wgmma_commit();
        """
    }

    /// Issues O += P V for step `v` as one commit group: P from registers (16 keys per wgmma), V MN-major.
    private func issueValues(step v: String) -> String {
        """
        \(HopperHelpers.mnMajorProducts(n: paddedValueDim, accumulator: "o", operands: "p", b: pipeline.pointer(pipeline.rings[values].tiles[0], stage: "(\(ringStep(v))) % STAGES"), rows: "BN", depth: "BN"))
                    fa_wgmma_commit();
        """
    }

    /// Step `i`'s scores (in `s`, finished) masked and turned into probabilities; `correction` is what the
    /// output rows must be multiplied by once the products reading them have finished. The online softmax sits in
    /// both branches of the mask check, as ``OneStepAheadWalk`` requires.
    private var softmax: String {
        """
        \(HopperPipeline.keyBlockEntry(step: "begin + i", keyBlock: "BN"))
                    \(HopperHelpers.checkedOrNot("partial || k0 + BN > Skv") { checked in
                        scores(checked: checked) + """

                        #pragma unroll
                        for (int r = 0; r < 2; ++r) correction[r] = fa_online_softmax(s, r, rowMax[r], rowSum[r], \(foldsScale ? "scaleLog2" : "1.0f"));
                        """
                    })
        """
    }

    /// Per step: Q Kᵀ (K's ring released when it is done, and Q after the tile's last one where it is read from shared
    /// memory), the softmax, P V (V's ring released when it is done), then O's rows rescaled and the next P packed.
    private var walkOneStepAhead: OneStepAheadWalk {
        OneStepAheadWalk(
            waitFirst: { pipeline.waitFull(ring: keys, step: ringStep($0)) }, issueFirst: issueScores,
            pinFirst: "fa_wgmma_pin(s);",
            releaseFirst: {
                pipeline.release(ring: keys, step: ringStep($0))
                    + (queryInRegisters ? "" : "\nif ((\($0)) == steps - 1) \(pipeline.releaseResident)")
            },
            elementwise: softmax,
            waitSecond: { pipeline.waitFull(ring: values, step: ringStep($0)) }, issueSecond: issueValues(step:),
            pinSecond: "fa_wgmma_pin(o);", releaseSecond: { pipeline.release(ring: values, step: ringStep($0)) },
            afterSecond: """
                #pragma unroll
                                for (int r = 0; r < 2; ++r) fa_rescale_row(o, r, correction[r]);
                """,
            pack: "fa_pack_operands(s, p);")
    }

    /// The kernel as a skeleton of steps. Per warpgroup, step i's S = Q Kᵀ is issued together with step i − 1's
    /// P V, so the softmax of step i runs while P V is on the tensor cores; and the warpgroups take turns to issue
    /// (``WarpgroupTurns``), so the tensor cores serve one group while the others are in their softmax. The CTA is
    /// persistent where that pays (``tiles``): the producer then loads the next tile's Q as soon as the consumers hand
    /// Q back (after copying it into registers, or after the tile's last Q Kᵀ) and streams its K and V on through the
    /// same rings.
    private var kernel: String {
        """
        extern "C" __global__ void __launch_bounds__(\(threads), 1)
        \(name)(
            \(signature.declaration)) {
            constexpr int D = \(headDim), DV = \(valueDim), NV = \(paddedValueDim), STAGES = \(stages);
            constexpr int GROUPS = \(consumerGroups), BM = 64 * GROUPS, BN = \(keyBlock);
            constexpr float LOG2E = 1.4426950408889634f;
            const float scaleLog2 = scale * LOG2E;
            \(pipeline.layout)
            \(ModKernelText.arguments(mask: mask, scoreMod: scoreMod))
            const int qBlocks = (Sq + BM - 1) / BM, heads = B * Hq, tiles = heads * qBlocks;
            const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
            const auto entryAt = [&](int step) { return fa_block_entry(blockList, step); };

            if (warp >= 4 * GROUPS) {  // the producer warpgroup
                \(pipeline.producer(residentAt: ("q0", "h"), streamedAt: ("k0", "hkv"), walk: walk, registers: producerRegisters, tiles: tiles))
            } else {
            asm volatile("setmaxnreg.inc.sync.aligned.u32 \(consumerRegisters);");
            // Consumer warpgroup `group`; this thread holds rows lane / 4 and lane / 4 + 8 of its warp's 16.
            const int group = warp / 4;
            \(turns.start(group: "group"))
            \(tiles.consumerOpen)
            \(ModKernelText.prepared(mask: mask, scoreMod: scoreMod))
            float o[NV / 8][4], rowMax[2], rowSum[2], correction[2];  // rowMax in base 2; rowSum this thread's part
            int rows[2];
            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                rowMax[r] = fa_negative_infinity();
                rowSum[r] = 0.0f;
                rows[r] = q0 + 16 * warp + lane / 4 + 8 * r;
            }
            #pragma unroll
            for (int j = 0; j < NV / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
            const int steps = end - begin;
            \(queryInRegisters
                ? HopperHelpers.residentOperands("qa", tile: "sQ", rows: "BM", columns: "\(64 * keyColumnBlocks)")
                    + "\n" + pipeline.releaseResident
                : "const unsigned char* const groupQ = sQ + group * 64 * 128;\nif (steps == 0) " + pipeline.releaseResident)
            float s[BN / 8][4];
            fa_u32 p[BN / 16][4];  // step i − 1's probabilities, rounded: the A operand of P V
            \(walkOneStepAhead.source)

            #pragma unroll
            for (int r = 0; r < 2; ++r) {
                \(outputRow(sum: "rowSum[r]", maximum: "rowMax[r]", query: "rows[r]", accumulator: "o"))
            }
            \(tiles.consumerClose)
            \(turns.finish(group: "group"))
            }
        }

        """
    }
}
