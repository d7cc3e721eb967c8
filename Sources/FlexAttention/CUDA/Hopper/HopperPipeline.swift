/// A shared tile that TMA fills: `rows` rows of 64-column boxes from the tensor map `map`, `columnBlocks` of them
/// (the layout ``HopperHelpers`` describes), addressed in the kernel as `pointer`.
struct HopperTile {
    let pointer: String
    let map: String
    let rows: Int
    let columnBlocks: Int

    var bytes: Int { rows * columnBlocks * 128 }
}

/// Contiguous bytes copied into every stage after the streamed tiles by a bulk copy, from `source` (a C address
/// expression of the walk's variables, 16-byte aligned), addressed in the kernel as `pointer`.
struct HopperBulkCopy {
    let pointer: String
    let source: String
    let bytes: Int
}

/// The warp-specialised pipeline the Hopper kernels share: tiles resident for the whole CTA, loaded once, and tiles
/// streamed through a ring of `stages` buffers, one set per step of the kernel's walk. A producer warpgroup (one
/// thread of it) issues the TMA copies; a "full" `mbarrier` per stage counts their bytes, an "empty" one counts
/// the consumer threads done with it. `setmaxnreg` gives the producer's registers to the consumers.
struct HopperPipeline {
    let resident: [HopperTile]
    let streamed: [HopperTile]
    var copies: [HopperBulkCopy] = []
    let stages: Int
    let consumerWarps: Int

    /// The tiles, barriers, and 1024 bytes to align the tiles for the 128-byte swizzle.
    var sharedMemoryBytes: Int {
        1024 + resident.map(\.bytes).reduce(0, +) + stages * stageBytes + 8 * (1 + 2 * stages)
    }

    /// What one stage's copies bring, and the stage's size: rounded up so every stage's tiles start 1024-aligned.
    private var streamedBytes: Int { streamed.map(\.bytes).reduce(0, +) + copies.map(\.bytes).reduce(0, +) }
    private var stageBytes: Int { (streamedBytes + 1023) / 1024 * 1024 }

    /// Carves shared memory (resident tiles by name; `stageBase(stage)` for the ring) and initialises the barriers.
    var layout: String {
        var lines = [
            "extern __shared__ __align__(16) unsigned char sharedBytes[];",
            "unsigned char* const sharedTiles = sharedBytes + ((1024 - (fa_shared_address(sharedBytes) & 1023)) & 1023);",
        ]
        var offset = 0
        for tile in resident {
            lines.append("unsigned char* const \(tile.pointer) = sharedTiles + \(offset);")
            offset += tile.bytes
        }
        lines += [
            "unsigned char* const sRing = sharedTiles + \(offset);",
            "const auto stageBase = [&](int stage) { return sRing + stage * \(stageBytes); };",
            "fa_u64* const residentLoaded = (fa_u64*)(sRing + \(stages * stageBytes));",
            "fa_u64* const full = residentLoaded + 1;",
            "fa_u64* const empty = full + \(stages);",
            "if (threadIdx.x == 0) {",
            "    fa_mbarrier_init(residentLoaded, 1);",
            "    for (int i = 0; i < \(stages); ++i) {",
            "        fa_mbarrier_init(&full[i], 1);",
            "        fa_mbarrier_init(&empty[i], \(32 * consumerWarps));  // one arrival per consumer thread",
            "    }",
            "    asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");",
            "}",
            "__syncthreads();",
        ]
        return lines.joined(separator: "\n    ")
    }

    /// The streamed tile `tile`'s pointer in stage `stage`.
    func pointer(_ tile: HopperTile, stage: String) -> String {
        let offset = streamed.prefix { $0.pointer != tile.pointer }.map(\.bytes).reduce(0, +)
        return "(stageBase(\(stage)) + \(offset))"
    }

    /// The bulk copy `copy`'s pointer in stage `stage`.
    func pointer(_ copy: HopperBulkCopy, stage: String) -> String {
        let offset = streamed.map(\.bytes).reduce(0, +)
            + copies.prefix { $0.pointer != copy.pointer }.map(\.bytes).reduce(0, +)
        return "(stageBase(\(stage)) + \(offset))"
    }

    /// The producer warpgroup's branch: loads the resident tiles at (row, head) coordinates `residentAt`, then for
    /// each step of the kernel's walk waits for its stage to be free and loads the streamed tiles at `streamedAt`.
    /// `walk.open` opens the loops and defines the running step index `i` and the coordinates (it may read the block
    /// list: before the wait, which would delay the read); `walk.close` closes them.
    func producer(residentAt: (row: String, head: String), streamedAt: (row: String, head: String),
                  walk: (open: String, close: String), registers: Int) -> String {
        func loads(_ tiles: [HopperTile], at: (row: String, head: String), stage: String?, barrier: String) -> [String] {
            tiles.map { tile in
                let target = stage.map { pointer(tile, stage: $0) } ?? tile.pointer
                return "for (int c = 0; c < \(tile.columnBlocks); ++c) fa_tma_load(\(target) + c * \(tile.rows * 128), "
                    + "&\(tile.map), 64 * c, \(at.row), \(at.head), b, \(barrier));"
            }
        }
        let copyLoads = copies.map { copy in
            "fa_bulk_load(\(pointer(copy, stage: "stage")), \(copy.source), \(copy.bytes), &full[stage]);"
        }
        return ([
            "asm volatile(\"setmaxnreg.dec.sync.aligned.u32 \(registers);\");",
            "if (warp == \(consumerWarps) && lane == 0) {",
            "    fa_mbarrier_expect_bytes(residentLoaded, \(resident.map(\.bytes).reduce(0, +)));",
        ] + loads(resident, at: residentAt, stage: nil, barrier: "residentLoaded").map { "    " + $0 } + [
            "    " + walk.open,
            "        const int stage = i % \(stages);",
            "        fa_mbarrier_wait(&empty[stage], (i / \(stages) + 1) & 1);",
            "        fa_mbarrier_expect_bytes(&full[stage], \(streamedBytes));",
        ] + (loads(streamed, at: streamedAt, stage: "stage", barrier: "&full[stage]") + copyLoads).map { "        " + $0 } + [
            "    " + walk.close,
            "}",
        ]).joined(separator: "\n        ")
    }

    /// The forward and dQ kernels' walk: the block list's line of key blocks (`begin ..< end`, `entryAt`), with the
    /// step's first key `k0` (blocks of `keyBlock`) and whether the mask must be applied, `partial`.
    static func keyBlockWalk(keyBlock: String) -> (open: String, close: String) {
        ("""
        for (int step = begin; step < end; ++step) {
                    const int i = step - begin;
                    \(keyBlockEntry(step: "step", keyBlock: keyBlock))
        """, "}")
    }

    /// The block list's entry at `step`: its first key `k0` (blocks of `keyBlock`) and `partial`, whether the mask
    /// must be applied.
    static func keyBlockEntry(step: String, keyBlock: String) -> String {
        "const int entry = entryAt(\(step)), k0 = (entry >> 1) * \(keyBlock);\n"
            + "const bool partial = (entry & 1) != 0;"
    }

    /// Consumer statements: wait for step `i`'s tiles, and hand its stage back (after the last wgmma reading it).
    func waitFull(step: String) -> String {
        "fa_mbarrier_wait(&full[(\(step)) % \(stages)], ((\(step)) / \(stages)) & 1);"
    }
    /// Every consumer thread arrives for itself: an arrival orders only its own thread's reads before the
    /// producer's next copy into the stage (racecheck reports a lane's ordinary reads of a stage as racing with the
    /// next bulk copy when lane 0 arrives for its warp after `__syncwarp`: notes/racecheck-probe/).
    func release(step: String) -> String {
        "fa_mbarrier_arrive(&empty[(\(step)) % \(stages)]);"
    }
}
