import Testing
@testable import FlexAttention

@Suite("Hopper kernels")
struct HopperKernelTests {
    private static let sharedMemory = 227 * 1024

    private func shape(_ dtype: DType, d: Int, dv: Int) throws -> AttentionShape {
        let query = try Tensor(zeros: [1, 4, 100, d], dtype: dtype)
        let value = try Tensor(zeros: [1, 2, 70, dv], dtype: dtype)
        return try AttentionShape(query: query, key: try Tensor(zeros: [1, 2, 70, d], dtype: dtype), value: value)
    }

    @Test("TMA reads 16-bit tensors with contiguous, 16-byte-aligned rows, whatever the layout")
    func tensorMapEligibility() {
        let bhsd = [4 * 100 * 64, 100 * 64, 64, 1], bshd = [100 * 4 * 64, 64, 4 * 64, 1]
        #expect(CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: bhsd, address: 4096))
        #expect(CUDATensorMap.canDescribe(dtype: .float16, shape: [2, 4, 100, 64], strides: bshd, address: 4096))
        // An axis of length 1 may have any stride: TMA is given a contiguous one.
        #expect(CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [1, 4, 100, 64], strides: [3, 6400, 64, 1], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .float32, shape: [2, 4, 100, 64], strides: bhsd, address: 4096))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: [25600, 6400, 1, 100], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 60], strides: [24000, 6000, 60, 1], address: 0))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: bhsd, address: 4098))
        #expect(!CUDATensorMap.canDescribe(dtype: .bfloat16, shape: [2, 4, 100, 64], strides: [0, 6400, 64, 1], address: 0))
    }

    @Test("the forward runs the Hopper kernel where tensor maps can be used, the mma.sync or CUDA-core one otherwise")
    func forwardSelection() throws {
        func kernel(_ dtype: DType, _ d: Int, _ dv: Int, tensorMaps: Bool) throws -> any AttentionKernel {
            try ForwardProgram.kernel(shape: shape(dtype, d: d, dv: dv), mask: CUDAModFunction(mask: .causal),
                                   scoreMod: nil, maxSharedMemory: Self.sharedMemory, tensorMaps: tensorMaps)
        }
        for (d, dv) in [(16, 16), (64, 64), (80, 80), (128, 64), (192, 192), (256, 256)] {
            let hopper = try kernel(.bfloat16, d, dv, tensorMaps: true)
            let mmaSync = try kernel(.bfloat16, d, dv, tensorMaps: false)
            #expect(hopper is HopperForwardKernel && hopper.readsTensorMaps, "D=\(d) Dv=\(dv)")
            #expect(mmaSync is MMAForwardKernel && !mmaSync.readsTensorMaps, "D=\(d) Dv=\(dv)")
        }
        let scalar = try kernel(.float32, 128, 128, tensorMaps: true)
        #expect(scalar is ScalarForwardKernel && !scalar.readsTensorMaps)
        #expect(try kernel(.float16, 72, 72, tensorMaps: true) is ScalarForwardKernel)
    }

    @Test("the backward runs one Hopper kernel (dQ summed in it): by keys to D = 128, by columns to 256; else the mma.sync pair")
    func backwardSelection() throws {
        func kernels(_ d: Int, _ dv: Int, tensorMaps: Bool) throws
            -> (keyValue: any GradientAttentionKernel, query: (any GradientAttentionKernel)?) {
            try BackwardProgram.kernels(shape: shape(.bfloat16, d: d, dv: dv), mask: nil, scoreMod: nil,
                                     maxSharedMemory: Self.sharedMemory, tensorMaps: tensorMaps)
        }
        // Stages as many as fit beside two dQ tiles: at D = 128 a third fits only with Dv's narrower dO.
        for (d, dv, stages) in [(16, 16, 4), (64, 64, 4), (80, 80, 2), (128, 64, 3), (128, 128, 2)] {
            let pair = try kernels(d, dv, tensorMaps: true)
            #expect(pair.keyValue is HopperGradientKernel && pair.query == nil, "D=\(d)")
            #expect(pair.keyValue.readsTensorMaps && pair.keyValue.sumsQueryGradient, "D=\(d)")
            #expect((pair.keyValue as? HopperGradientKernel)?.stages == stages, "D=\(d) Dv=\(dv)")
        }
        for (d, dv) in [(192, 192), (256, 256), (144, 144), (128, 256), (256, 208)] {
            let pair = try kernels(d, dv, tensorMaps: true)
            #expect(pair.keyValue is HopperWideGradientKernel && pair.query == nil, "D=\(d) Dv=\(dv)")
            #expect(pair.keyValue.readsTensorMaps && pair.keyValue.sumsQueryGradient, "D=\(d) Dv=\(dv)")
            #expect(pair.keyValue.keyBlock == 64 && (pair.keyValue as? HopperWideGradientKernel)?.stages == 2, "D=\(d) Dv=\(dv)")
        }
        // dQ's tile (64 rows of D Float32s) is written over a stage of Q and dO, so D padded must not pass Dv padded.
        for (d, dv, tensorMaps) in [(256, 128, true), (192, 64, true), (128, 128, false), (256, 256, false)] {
            let pair = try kernels(d, dv, tensorMaps: tensorMaps)
            #expect(pair.keyValue is MMAKeyValueGradientKernel && pair.query is MMAQueryGradientKernel, "D=\(d) Dv=\(dv)")
            #expect(!pair.keyValue.readsTensorMaps && !pair.keyValue.sumsQueryGradient, "D=\(d) Dv=\(dv)")
        }
    }

    @Test("every Hopper kernel fits an H100's shared memory, with fewer stages where the tiles are larger")
    func sharedMemoryFits() {
        let kernels = KernelCatalog.hopperKernels.compactMap { $0 as? any TensorCoreAttentionKernel }
        #expect(kernels.count == KernelCatalog.hopperKernels.count)
        for kernel in kernels {
            #expect(kernel.sharedMemoryBytes <= Self.sharedMemory, "\(kernel.name)")
            #expect(kernel.stages >= 1 && kernel.stages <= kernel.maxStages, "\(kernel.name)")
        }
        let forward = HopperForwardKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil)
        #expect(forward.fitting(maxSharedMemory: Self.sharedMemory).stages == 3)
        #expect(forward.fitting(maxSharedMemory: 200 * 1024).stages == 2)
        // The tiles start on a 1024-byte boundary: Q, then three stages of K, three of V, then the barriers (Q's
        // arrival, full and empty for each stage of both rings, and Q's hand-back).
        #expect(forward.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 128 * 256 + 3 * 128 * 256 + 3 * 128 * 256 + 8 * 14)
        // Where Dv > 128 the forward takes 80 keys per block: Q (128 rows by 256), two stages of K and of V.
        let wideForward = HopperForwardKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil)
            .fitting(maxSharedMemory: Self.sharedMemory)
        #expect(wideForward.keyBlock == 80 && wideForward.stages == 2)
        #expect(wideForward.sharedMemoryBytes == 1024 + 128 * 512 + 2 * 80 * 512 + 2 * 80 * 512 + 8 * 10)
        // The backward: K and V; two dSt buffers (128 keys by 64 queries) and two dQ tiles (64 rows by 128 Float32s);
        // two stages of Q and dO, and of the block's LSE and Delta in a ring of their own; then the barriers (K
        // and V's, full and empty per stage of both rings, and each dQ tile's two).
        let backward = HopperGradientKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil)
        #expect(backward.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 2 * 128 * 256 + (2 * 128 * 128 + 2 * 64 * 128 * 4) + 2 * 2 * 64 * 256 + 2 * 512 + 8 * 13)
        // At D = Dv = 64 the same with 64-column tiles, in four stages, and two dQ tiles (each with its two barriers).
        let narrow = HopperGradientKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: nil, scoreMod: nil)
        #expect(narrow.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 2 * 128 * 128 + (2 * 128 * 128 + 2 * 64 * 64 * 4) + 4 * 2 * 64 * 128 + 4 * 512 + 8 * 21)
        // The wide backward at D = Dv = 256: K and V for 64 keys; Pt and dSt (64 keys by 64 queries); two stages of
        // Q and dO (which dQ's tile, 64 rows by 256 Float32s, overwrites), and of LSE and Delta; the barriers (K and
        // V's, full and empty per stage of both rings, and the dQ tile's one).
        let wide = HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil)
        #expect(wide.fitting(maxSharedMemory: Self.sharedMemory).sharedMemoryBytes
                == 1024 + 2 * 64 * 512 + 2 * 64 * 128 + 2 * 2 * 64 * 512 + 2 * 512 + 8 * 10)
        #expect(64 * 256 * 4 == wide.pipeline.rings[0].stageBytes)
    }

    @Test("the forward takes 192 query rows in three consumer warpgroups up to D = 64, and registers fit the file")
    func consumerGroups() {
        for (d, groups) in [(16, 3), (64, 3), (80, 2), (128, 2), (256, 2)] {
            let forward = HopperForwardKernel(dtype: .bfloat16, headDim: d, valueDim: d, mask: nil, scoreMod: nil)
            #expect(forward.consumerGroups == groups && forward.queryBlock == 64 * groups, "D=\(d)")
            #expect(forward.threads == 128 * (groups + 1), "D=\(d)")
        }
        let kernels = KernelCatalog.hopperKernels.compactMap { $0 as? any HopperAttentionKernel }
        #expect(kernels.count == KernelCatalog.hopperKernels.count)
        for kernel in kernels {
            // setmaxnreg wants multiples of 8, and the producer's and consumers' registers must fit 64K.
            #expect(kernel.consumerRegisters % 8 == 0 && kernel.consumerRegisters >= 128, "\(kernel.name)")
            #expect(128 * kernel.producerRegisters + 128 * kernel.consumerGroups * kernel.consumerRegisters < 65536,
                    "\(kernel.name)")
        }
    }

    @Test("the forward holds Q as the register operand of Q Kᵀ where two groups have the registers (64 < D ≤ 128, no score mod)")
    func forwardQueryInRegisters() {
        for (d, dv, inRegisters) in [(64, 64, false), (80, 80, true), (128, 128, true), (128, 64, true), (192, 192, false),
                                     (256, 256, false)] {
            let kernel = HopperForwardKernel(dtype: .bfloat16, headDim: d, valueDim: dv, mask: nil, scoreMod: nil)
            #expect(kernel.queryInRegisters == inRegisters, "D=\(d) Dv=\(dv)")
            #expect(kernel.source.contains("fa_wgmma_rk_\(kernel.keyBlock)(s, qa[kk]") == inRegisters, "D=\(d) Dv=\(dv)")
            #expect(kernel.source.contains("groupQ + kk / 4") == !inRegisters, "D=\(d) Dv=\(dv)")
        }
        let modded = HopperForwardKernel(
            dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: CUDAModFunction(scoreMod: .softCap(30)))
        #expect(!modded.queryInRegisters && modded.source.contains("groupQ + kk / 4"))
    }

    @Test("the forward is persistent at D ≤ 64 and for up to 2048 keys, taking its tiles from a zeroed counter")
    func forwardSchedule() throws {
        func kernel(d: Int, keys: Int) throws -> HopperForwardKernel? {
            let shape = try AttentionShape(
                query: try Tensor(zeros: [2, 4, 300, d], dtype: .bfloat16), key: try Tensor(zeros: [2, 2, keys, d], dtype: .bfloat16),
                value: try Tensor(zeros: [2, 2, keys, d], dtype: .bfloat16))
            return try ForwardProgram.kernel(
                shape: shape, mask: nil, scoreMod: nil, maxSharedMemory: Self.sharedMemory, tensorMaps: true)
                as? HopperForwardKernel
        }
        for (d, keys, persistent) in [(64, 8192, true), (64, 100, true), (128, 2048, true), (128, 2049, false),
                                      (256, 4096, false)] {
            let chosen = try #require(try kernel(d: d, keys: keys))
            #expect(chosen.persistent == persistent && chosen.schedulesTiles == persistent, "D=\(d) keys=\(keys)")
            #expect(chosen.source.contains("atomicAdd(tileCounter, 1)") == persistent, "D=\(d) keys=\(keys)")
            #expect(chosen.name.hasSuffix("_persistent") == persistent, "D=\(d) keys=\(keys)")
            // 300 queries in tiles of 192 (D = 64) or 128 rows, 8 heads: a CTA per tile, or at most one per SM.
            let shape = try AttentionShape(batch: 2, queryHeads: 4, keyValueHeads: 2, queryLength: 300, headDim: d, dtype: .bfloat16)
            let tiles = 8 * (d <= 64 ? 2 : 3)
            #expect(chosen.grid(shape, multiprocessors: 5) == (persistent ? 5 : tiles, 1), "D=\(d) keys=\(keys)")
            #expect(chosen.grid(shape, multiprocessors: 132) == (tiles, 1), "D=\(d) keys=\(keys)")
        }
        // The slot that passes the tile index sits after the barriers, inside the shared memory the kernel asks for.
        let oneTile = HopperForwardKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: nil, scoreMod: nil)
        var persistent = oneTile
        persistent.persistent = true
        #expect(persistent.sharedMemoryBytes == oneTile.sharedMemoryBytes + 8)
        #expect(persistent.source.contains("int* const scheduledTile") && !oneTile.source.contains("scheduledTile"))
    }

    @Test("the forward's tiles come in bands of heads, the short band first, each band's query blocks longest first")
    func forwardTileOrder() throws {
        // The kernel text's numbering (tiles.setup), replayed here: tile -> (query block, head).
        let kernel = HopperForwardKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil)
        for line in ["const int pad = (bandHeads - heads % bandHeads) % bandHeads, band = (tile + pad * qBlocks) / (bandHeads * qBlocks);",
                     "const int firstHead = max(band * bandHeads - pad, 0), width = (band + 1) * bandHeads - pad - firstHead;",
                     "const int inBand = tile - firstHead * qBlocks, head = firstHead + inBand % width;",
                     "const int qBlock = qBlocks - 1 - inBand / width;",
                     "const int b = head / Hq, h = head % Hq, hkv = h / (Hq / Hkv);"] {
            #expect(kernel.source.contains(line))
        }
        func coordinates(_ tile: Int, qBlocks: Int, heads: Int, width bandHeads: Int) -> (qBlock: Int, head: Int, band: Int) {
            let pad = (bandHeads - heads % bandHeads) % bandHeads, band = (tile + pad * qBlocks) / (bandHeads * qBlocks)
            let firstHead = max(band * bandHeads - pad, 0), width = (band + 1) * bandHeads - pad - firstHead
            let inBand = tile - firstHead * qBlocks
            return (qBlocks - 1 - inBand / width, firstHead + inBand % width, band)
        }
        for (qBlocks, heads, bandHeads) in [(16, 128, 17), (5, 7, 3), (4, 3, 8), (64, 32, 5), (3, 10, 4), (2, 12, 4), (7, 9, 1)] {
            let bandHeads = min(bandHeads, heads)
            let order = (0..<qBlocks * heads).map { coordinates($0, qBlocks: qBlocks, heads: heads, width: bandHeads) }
            // Every (query block, head) exactly once.
            #expect(Set(order.map { $0.qBlock * heads + $0.head }) == Set(0..<qBlocks * heads), "\(qBlocks) \(heads) \(bandHeads)")
            #expect(order.allSatisfy { (0..<qBlocks).contains($0.qBlock) && (0..<heads).contains($0.head) })
            // A band's heads are contiguous, and only the first band is short.
            let first = heads - (heads - 1) / bandHeads * bandHeads
            for (band, tiles) in Dictionary(grouping: order, by: \.band) {
                let members = Set(tiles.map(\.head))
                #expect(members.count == (band == 0 ? first : bandHeads) && members.max()! - members.min()! == members.count - 1)
            }
            // Within a band, query blocks longest first (the highest: under causal, the most keys).
            for tile in order.indices.dropFirst() where order[tile - 1].band == order[tile].band {
                #expect(order[tile - 1].qBlock >= order[tile].qBlock)
            }
        }
        // Bands hold the K/V heads a third of the L2 holds, but twice as many tiles as SMs, in whole GQA groups;
        // three consumer groups (D ≤ 64) keep one order.
        func headBand(_ b: Int, _ hq: Int, _ hkv: Int, _ s: Int, _ d: Int) throws -> Int {
            let shape = try AttentionShape(batch: b, queryHeads: hq, keyValueHeads: hkv, queryLength: s, headDim: d, dtype: .bfloat16)
            return HopperForwardKernel(dtype: .bfloat16, headDim: d, valueDim: d, mask: nil, scoreMod: nil)
                .headBand(for: shape, multiprocessors: 132, l2Bytes: 50 << 20)
        }
        #expect(try headBand(8, 16, 16, 2048, 128) == 17)  // 1 MB of K and V per head: 16 fit, 16 query blocks want 17
        #expect(try headBand(2, 16, 16, 8192, 128) == 5)
        #expect(try headBand(1, 16, 16, 16384, 128) == 3)
        #expect(try headBand(2, 8, 8, 8192, 256) == 5)
        #expect(try headBand(8, 32, 8, 2048, 128) == 64)  // groups of 4 share K and V
        #expect(try headBand(1, 16, 4, 65536, 128) == 4)
        #expect(try headBand(1, 4, 4, 300, 128) == 4)
        #expect(try headBand(8, 32, 32, 2048, 64) == 256)
        let shape = try AttentionShape(batch: 1, queryHeads: 8, keyValueHeads: 2, queryLength: 1, headDim: 128, dtype: .bfloat16)
        #expect(kernel.headBand(for: shape, multiprocessors: 0, l2Bytes: 0) == 4)
    }

    @Test("checked scores take the mask's verdict with bitwise operators, so no score of a tile branches")
    func branchFreeMask() {
        let causal = CUDAModFunction(mask: .causal)
        let verdict = "(key < Skv) & (!partial | fa_mask(b, h, query, key, Sq, Skv, mask_mod))"
        let kernels: [any AttentionKernel] = [
            HopperForwardKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: causal, scoreMod: nil),
            MMAForwardKernel(dtype: .float16, headDim: 64, valueDim: 64, mask: causal, scoreMod: nil),
            HopperGradientKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: causal, scoreMod: nil),
            HopperGradientKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: causal,
                                 scoreMod: CUDAModFunction(scoreMod: .softCap(30))),
        ]
        for kernel in kernels {
            #expect(kernel.source.contains(verdict), "\(kernel.name)")
            #expect(!kernel.source.contains("if (partial)") && !kernel.source.contains("!partial ||"), "\(kernel.name)")
        }
        let unmasked = HopperForwardKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: nil, scoreMod: nil)
        #expect(unmasked.source.contains("const bool keep = key < Skv;") && !unmasked.source.contains("!partial |"))
    }

    @Test("the forward folds the scale into the softmax only for a positive scale and no score mod")
    func foldedScale() throws {
        func kernel(_ scoreMod: ScoreMod?, positive: Bool) throws -> HopperForwardKernel? {
            try ForwardProgram.kernel(
                shape: shape(.bfloat16, d: 128, dv: 128), mask: nil, scoreMod: scoreMod.map { CUDAModFunction(scoreMod: $0) },
                maxSharedMemory: Self.sharedMemory, tensorMaps: true, scaleIsPositive: positive) as? HopperForwardKernel
        }
        let folded = try #require(try kernel(nil, positive: true))
        let prescaled = try #require(try kernel(nil, positive: false))
        let modded = try #require(try kernel(.softCap(30), positive: true))
        #expect(folded.foldsScale && !prescaled.foldsScale && !modded.foldsScale)
        #expect(folded.name != prescaled.name && prescaled.name.contains("prescaled"))
        #expect(folded.source.contains("fa_online_softmax(s, r, rowMax[r], rowSum[r], scaleLog2)"))
        #expect(prescaled.source.contains("fa_online_softmax(s, r, rowMax[r], rowSum[r], 1.0f)"))
    }

    @Test("the backward holds K and V as register operands up to D = Dv = 64, and drops the guards without a score mod")
    func backwardOperands() {
        for (d, dv, inRegisters) in [(64, 64, true), (32, 48, true), (64, 128, false), (128, 64, false), (128, 128, false)] {
            let kernel = HopperGradientKernel(dtype: .bfloat16, headDim: d, valueDim: dv, mask: nil, scoreMod: nil)
            #expect(kernel.keysInRegisters == inRegisters, "D=\(d) Dv=\(dv)")
            #expect(kernel.source.contains("fa_wgmma_rk_64(st, ka[kk]") == inRegisters, "D=\(d) Dv=\(dv)")
            #expect(kernel.source.contains("fa_wgmma_ss_64(st, fa_wgmma_descriptor(groupK") == !inRegisters, "D=\(d) Dv=\(dv)")
            #expect(kernel.source.contains("dpt[j][e] = p * (dpt[j][e] - delta[query - q0]);"))
            #expect(!kernel.source.contains("upstream"))
        }
        let modded = HopperGradientKernel(
            dtype: .bfloat16, headDim: 64, valueDim: 64, mask: nil, scoreMod: CUDAModFunction(scoreMod: .softCap(30)))
        #expect(modded.source.contains("upstream == 0.0f ? 0.0f : upstream * slope"))
    }

    @Test("dQ's sums are added highest key block first: each entry's turn counts the higher key blocks that list its query block")
    func queryGradientTurns() {
        // Three key blocks (lines) over four query blocks, causal-like: line k lists query blocks 2k ..< 4, the
        // second marked partial; an empty line adds to nothing.
        let entries: [Int32] = [0 << 1, 1 << 1 | 1, 2 << 1, 3 << 1, 2 << 1, 3 << 1 | 1]
        let turns = CUDABlockList.turns(lines: [0, 4, 6, 6], entries: entries, queryBlocks: 4)
        #expect(turns == [0, 0, 1, 1, 0, 0])
        // Without a list every key block adds to every query block: the kernel's own rule is the same ranking.
        let keyBlocks = 5, queryBlocks = 3
        let dense = (0..<keyBlocks).flatMap { _ in (0..<queryBlocks).map { Int32($0 << 1) } }
        let denseTurns = CUDABlockList.turns(
            lines: (0...keyBlocks).map { $0 * queryBlocks }, entries: dense, queryBlocks: queryBlocks)
        #expect(denseTurns == (0..<keyBlocks).flatMap { k in Array(repeating: Int32(keyBlocks - 1 - k), count: queryBlocks) })
    }

    @Test("the dQ finish waits for each query block's adders: the entries that name it, or every key block without a list")
    func queryGradientAdders() {
        // The causal-like lines of queryGradientTurns: query blocks 0 and 1 have one adder, 2 and 3 two.
        let entries: [Int32] = [0 << 1, 1 << 1 | 1, 2 << 1, 3 << 1, 2 << 1, 3 << 1 | 1]
        #expect(CUDABlockList.adders(entries: entries[...], queryBlocks: 4) == [1, 1, 2, 2])
        // A query block no entry names waits for nothing: the finish writes zeros there.
        #expect(CUDABlockList.adders(entries: [1 << 1, 1 << 1 | 1], queryBlocks: 3) == [0, 2, 0])
        // Each adder's turn is below the count, so the last turn passed leaves the counter at exactly the count.
        let turns = CUDABlockList.turns(lines: [0, 4, 6, 6], entries: entries, queryBlocks: 4)
        let counts = CUDABlockList.adders(entries: entries[...], queryBlocks: 4)
        for (entry, turn) in zip(entries, turns) { #expect(turn < counts[Int(entry >> 1)]) }
        let finish = QueryGradientFinishKernel(dtype: .bfloat16).source
        #expect(finish.contains("fa_await_turn(turns + block, expected, 2048);"))
        #expect(finish.contains("griddepcontrol.wait;"))
        for kernel in [HopperGradientKernel(dtype: .bfloat16, headDim: 128, valueDim: 128, mask: nil, scoreMod: nil).source,
                       HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil).source] {
            #expect(kernel.contains(ProgrammaticLaunch.launchDependents))
        }
    }

    @Test("a programmatic launch's CUlaunchConfig and its one attribute sit at the C headers' offsets")
    func programmaticLaunchLayout() {
        let storage = UnsafeMutableRawPointer.allocate(
            byteCount: ProgrammaticLaunch.configBytes + ProgrammaticLaunch.attributeBytes, alignment: 8)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0xAB, count: ProgrammaticLaunch.configBytes + ProgrammaticLaunch.attributeBytes)
        let stream = OpaquePointer(bitPattern: 0x1234_5678)
        ProgrammaticLaunch.write(into: storage, dimensions: [7, 6, 5, 384, 1, 1], sharedMemory: 230_000, stream: stream)
        #expect((0..<6).map { storage.load(fromByteOffset: 4 * $0, as: UInt32.self) } == [7, 6, 5, 384, 1, 1])
        #expect(storage.load(fromByteOffset: 24, as: UInt32.self) == 230_000)
        #expect(storage.load(fromByteOffset: 28, as: UInt32.self) == 0)  // padding before the stream
        #expect(storage.load(fromByteOffset: 32, as: UInt.self) == 0x1234_5678)
        #expect(storage.load(fromByteOffset: 40, as: UInt.self) == UInt(bitPattern: storage + 56))
        #expect(storage.load(fromByteOffset: 48, as: UInt32.self) == 1)
        // The attribute: CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (6), then the value's int at byte 8.
        #expect(storage.load(fromByteOffset: 56, as: Int32.self) == 6)
        #expect(storage.load(fromByteOffset: 64, as: Int32.self) == 1)
        #expect((68..<128).allSatisfy { storage.load(fromByteOffset: $0, as: UInt8.self) == 0 })
    }

    /// The backward's CTA numbering (``HopperBackwardKernel/ctaCoordinates``) replayed: launch number → (key block,
    /// head), levels from the highest key block down or from key block 0 up.
    private static func replayedBackwardOrder(keyBlocks: Int, heads: Int, band: Int, highestFirst: Bool)
        -> [(keyBlock: Int, head: Int)] {
        (0..<keyBlocks * heads).map { cta in
            let firstHead = cta / (band * keyBlocks) * band, width = min(band, heads - firstHead)
            let inBand = cta % (band * keyBlocks), level = inBand / width
            return (highestFirst ? keyBlocks - 1 - level : level, firstHead + inBand % width)
        }
    }

    @Test("the backward launches bands of heads key block level by level, so each CTA waits only for ones launched before it")
    func backwardLaunchOrder() {
        // The kernel text's numbering (ctaCoordinates), replayed here: launch number -> (key block, head).
        let kernel = HopperGradientKernel(dtype: .bfloat16, headDim: 64, valueDim: 64, mask: nil, scoreMod: nil)
        #expect(kernel.source.contains(
            "const int inBand = (int)(cta % bandCTAs), keyBlock = keyBlocks - 1 - inBand / width, head = firstHead + inBand % width;"))
        for (keyBlocks, heads, band) in [(16, 256, 9), (5, 7, 3), (4, 3, 8), (64, 64, 1), (3, 10, 4)] {
            let order = Self.replayedBackwardOrder(keyBlocks: keyBlocks, heads: heads, band: min(band, heads), highestFirst: true)
            // Every (key block, head) once.
            #expect(Set(order.map { $0.keyBlock * heads + $0.head }).count == keyBlocks * heads)
            // A key block's dQ turn waits for the key blocks above it in its head: all launched earlier.
            var launched = [Int: Int]()
            for (cta, c) in order.enumerated() { launched[c.keyBlock * heads + c.head] = cta }
            for (cta, c) in order.enumerated() where c.keyBlock + 1 < keyBlocks {
                #expect(launched[(c.keyBlock + 1) * heads + c.head]! < cta)
            }
        }
        // Short walks get wide bands (a multiprocessor frees up every walk / SMs steps), as wide as the L2 holds the
        // band's Q, dO and dQ sums; long walks run in plain order.
        let l2 = 50 * 1024 * 1024, megabyte = 1024 * 1024
        #expect(HopperGradientKernel.headBand(walk: 32, turnSteps: 8, heads: 256, headBytes: megabyte, multiprocessors: 132, l2Bytes: l2) == 33)
        #expect(HopperGradientKernel.headBand(walk: 32, turnSteps: 2, heads: 128, headBytes: 2 * megabyte, multiprocessors: 132, l2Bytes: l2) == 9)
        #expect(HopperGradientKernel.headBand(walk: 32, turnSteps: 8, heads: 4, headBytes: megabyte, multiprocessors: 132, l2Bytes: l2) == 4)
        #expect(HopperGradientKernel.headBand(walk: 128, turnSteps: 8, heads: 64, headBytes: 4 * megabyte, multiprocessors: 132, l2Bytes: l2) == 9)
        #expect(HopperGradientKernel.headBand(walk: 128, turnSteps: 2, heads: 16, headBytes: 16 * megabyte, multiprocessors: 132, l2Bytes: l2) == 2)
        #expect(HopperGradientKernel.headBand(walk: 2048, turnSteps: 8, heads: 16, headBytes: megabyte, multiprocessors: 132, l2Bytes: l2) == 1)
        #expect([64, 80, 128, 192, 256].map { HopperGradientKernel.turnSteps(headDim: $0, valueDim: 64) } == [8, 2, 2, 2, 2])
        #expect(HopperGradientKernel.headBand(walk: 0, turnSteps: 0, heads: 0, headBytes: 0, multiprocessors: 0, l2Bytes: 0) == 1)
    }

    @Test("with dQ in any order the wide backward waits for no turn, adds to zeroed sums, and launches each head's key block 0 first")
    func anyOrderBackward() throws {
        let fixed = HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil)
        let free = HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil,
                                            ordersQueryGradient: false)
        #expect(fixed.ordersQueryGradient && !free.ordersQueryGradient)
        #expect(free.name == fixed.name + "_anyorder")
        #expect(fixed.source.contains("fa_await_turn(dQturns + block, turn);") && fixed.source.contains("fa_bulk_store(sums,"))
        #expect(!free.source.contains("fa_await_turn(dQturns") && !free.source.contains("fa_bulk_store(sums,"))
        #expect(free.source.contains("fa_bulk_reduce_add(sums, ringBase0(i % 2), QC * 16384);")
                && free.source.contains("fa_pass_turn(dQturns + block);"))
        #expect(free.source.contains(
            "const int inBand = (int)(cta % bandCTAs), keyBlock = inBand / width, head = firstHead + inBand % width;"))
        #expect(free.sharedMemoryBytes == fixed.sharedMemoryBytes)
        // The text's numbering, replayed: every (key block, head) once, and within a band key block 0 of each head
        // first, then level by level up (under a causal mask, the longest walks first).
        for (keyBlocks, heads, band) in [(16, 256, 9), (5, 7, 3), (4, 3, 3), (64, 64, 1)] {
            let order = Self.replayedBackwardOrder(keyBlocks: keyBlocks, heads: heads, band: band, highestFirst: false)
            #expect(Set(order.map { $0.keyBlock * heads + $0.head }).count == keyBlocks * heads)
            var launched = [Int: Int]()
            for (cta, c) in order.enumerated() { launched[c.keyBlock * heads + c.head] = cta }
            for c in order where c.keyBlock > 0 {
                #expect(launched[(c.keyBlock - 1) * heads + c.head]! < launched[c.keyBlock * heads + c.head]!)
            }
        }
        // The program takes it above D = 128 only; up to 128 and on CUDA cores the option changes nothing.
        func kernels(_ dtype: DType, _ d: Int) throws -> (keyValue: any GradientAttentionKernel, query: (any GradientAttentionKernel)?) {
            try BackwardProgram.kernels(shape: shape(dtype, d: d, dv: d), mask: nil, scoreMod: nil,
                                        maxSharedMemory: Self.sharedMemory, tensorMaps: true, deterministic: false)
        }
        for d in [192, 256] {
            let wide = try #require(try kernels(.bfloat16, d).keyValue as? HopperWideGradientKernel)
            #expect(!wide.ordersQueryGradient)
        }
        for d in [64, 128] {
            let narrow = try #require(try kernels(.bfloat16, d).keyValue as? HopperGradientKernel)
            #expect(narrow.ordersQueryGradient && !narrow.name.contains("anyorder"))
        }
        let cudaCores = try kernels(.float32, 64)
        #expect(!(cudaCores.keyValue is any HopperBackwardKernel) && cudaCores.query != nil)
    }

    @Test("with two dQ tiles a warp per tile adds its steps' tiles, so one step's turn overlaps the last one's writes")
    func queryGradientWarps() {
        for d in [64, 80, 128] {
            let kernel = HopperGradientKernel(dtype: .bfloat16, headDim: d, valueDim: d, mask: nil, scoreMod: nil)
            let source = kernel.source
            #expect(kernel.queryGradientTiles == 2)
            #expect(source.contains("if (warp >= 9 && warp < 11 && lane == 0) {  // the dQ warps, one per tile"), "D=\(d)")
            #expect(source.contains("if (i % 2 != warp - 9) continue;  // the other tile's step"), "D=\(d)")
            #expect(!source.contains("if (warp == 9 && lane == 0) {  // the dQ warp"), "D=\(d)")
        }
        // The wide backward writes its one tile over a stage: one dQ warp.
        let wide = HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil).source
        #expect(wide.contains("if (warp == 9 && lane == 0) {  // the dQ warp"))
        #expect(!wide.contains("// the dQ warps, one per tile"))
    }

    @Test("every consumer thread waits for the dQ tile's hand-back before it arrives for the next step, writer or not")
    func queryGradientHandOff() {
        // At D <= 64 the groups take turns to write the tile; a wait inside the writer's branch let the other group
        // arrive early or mistake an older barrier phase (notes/protocol-model/dq_tile_protocol.py).
        // With two tiles step v uses tile v % 2 and waits for the hand-back of step v - 2, its phase v / 2.
        let (empty, full) = ("fa_mbarrier_wait(dQEmpty + (i - 1) % 2, ((((i - 1) / 2)) + 1) & 1);", "fa_mbarrier_arrive(dQFull + (i - 1) % 2);")
        for d in [64, 128] {
            let kernel = HopperGradientKernel(dtype: .bfloat16, headDim: d, valueDim: d, mask: nil, scoreMod: nil)
            let lines = kernel.source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let waits = lines.indices.filter { lines[$0] == empty }
            let arrivals = lines.indices.filter { lines[$0] == full }
            #expect(kernel.queryGradientTiles == 2)
            #expect(waits.count == 2 && arrivals.count == 2, "D=\(d): the loop's and the last step's")
            for (wait, arrival) in zip(waits, arrivals) {
                #expect(wait < arrival && lines[wait + 1] == "if (sums) {", "D=\(d): the wait comes before the writer's branch")
                #expect(lines[wait - 1] != "if (sums) {", "D=\(d)")
            }
        }
    }

    @Test("the wide backward's consumers wait for the previous stage's hand-back before arriving for the next dQ tile")
    func wideQueryGradientHandOff() {
        // The dQ warp hands a stage back once it has read the tile written over it: a consumer arriving for step i
        // before step i − 1's stage came back could complete two dQFull phases ahead of the dQ warp's parity wait.
        let kernel = HopperWideGradientKernel(dtype: .bfloat16, headDim: 256, valueDim: 256, mask: nil, scoreMod: nil)
        let lines = kernel.source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let arrivals = lines.indices.filter { lines[$0].hasPrefix("fa_mbarrier_arrive(dQFull)") }
        #expect(arrivals.count == 1)
        #expect(arrivals.allSatisfy { lines[$0 - 1] == "if (i > 0) fa_mbarrier_wait(&empty[0 + (i - 1) % 2], ((i - 1) / 2) & 1);" })
        // The stage is handed back by the dQ warp alone (one arrival), after the tile's read.
        #expect(kernel.source.contains("fa_mbarrier_init(&empty[i], 1);"))
        let reads = lines.indices.filter { lines[$0] == "fa_bulk_wait_read();" }
        #expect(reads.count == 1 && reads.allSatisfy { lines[$0 + 1] == "fa_mbarrier_arrive(&empty[0 + i % 2]);" })
    }

    @Test("dQ's sums tile swizzles 8-float chunks by row, and the buffer ends with one turn counter per query block")
    func queryGradientSumsLayout() {
        // The layout QueryGradientSums documents (fa_dq_sums_index): each row holds every column once, and a warp's
        // float2 stores for one chunk (8 rows, 4 pairs) cover the 32 banks exactly twice (two wavefronts, the least).
        func swizzledIndex(row: Int, column: Int) -> Int { row * 64 + ((column / 8) ^ (row % 8)) * 8 + column % 8 }
        #expect(QueryGradientSums.indexFunction.contains("row * 64 + ((((column >> 3) ^ row) & 7) << 3) + (column & 7)"))
        for row in 0..<64 {
            let indices = (0..<64).map { swizzledIndex(row: row, column: $0) }
            #expect(Set(indices) == Set(row * 64 ..< row * 64 + 64))
        }
        for chunk in 0..<8 {
            var banks = [Int](repeating: 0, count: 32)
            for lane in 0..<32 {
                let index = swizzledIndex(row: lane / 4, column: 8 * chunk + 2 * (lane % 4))
                banks[index % 32] += 1
                banks[(index + 1) % 32] += 1
            }
            #expect(banks.allSatisfy { $0 == 2 }, "chunk \(chunk)")
        }
        let bytes = QueryGradientSums.byteCount(batch: 2, heads: 3, queryLength: 65, headDim: 128)
        let turns = QueryGradientSums.turnsOffset(batch: 2, heads: 3, queryLength: 65, headDim: 128)
        #expect(turns == 4 * 2 * 3 * 2 * 2 * 64 * 64 && bytes == turns + 4 * 2 * 3 * 2)
    }

    @Test("a wgmma form binds every accumulator and operand once")
    func wgmmaOperands() {
        for shape in [WGMMAShape(n: 64, operands: .kMajor), WGMMAShape(n: 128, operands: .registers),
                      WGMMAShape(n: 256, operands: .registers), WGMMAShape(n: 32, operands: .bMNMajor),
                      WGMMAShape(n: 128, operands: .mnMajor), WGMMAShape(n: 64, operands: .registersKMajor)] {
            let source = shape.source("bf16")
            let fromRegisters = shape.operands == .registers || shape.operands == .registersKMajor
            let operands = shape.n / 2 + (fromRegisters ? 6 : 3)
            #expect(source.contains("m64n\(shape.n)k16.f32.bf16.bf16"))
            // Only the K-major register form may start a product afresh (K Qᵀ); the MN-major one always adds.
            #expect(source.contains("int accumulate") == (shape.operands != .registers))
            let transposes: [WGMMAShape.Operands: String] = [
                .kMajor: "0, 0", .bMNMajor: "0, 1", .mnMajor: "1, 1", .registers: "1", .registersKMajor: "0",
            ]
            #expect(source.contains("p, 1, 1, \(transposes[shape.operands] ?? "?"); }"))
            #expect(source.contains("%\(operands - 1)") && !source.contains("%\(operands),") && !source.contains("%\(operands);"))
            #expect(source.components(separatedBy: "\"+f\"(d[").count - 1 == shape.n / 2)
        }
    }
}
