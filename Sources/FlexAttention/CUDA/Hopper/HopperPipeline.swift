/// A shared tile that TMA fills: `rows` rows of 64-column boxes from the tensor map `map`, `columnBlocks` of them
/// (the layout ``HopperHelpers`` describes), addressed in the kernel as `pointer`.
struct HopperTile {
    let pointer: String
    let map: String
    let rows: Int
    let columnBlocks: Int

    var bytes: Int { rows * columnBlocks * 128 }
}

/// The warp-specialised pipeline the Hopper kernels share: tiles resident for the whole CTA, loaded once, and tiles
/// streamed through a ring of `stages` buffers, one set per step of the kernel's walk. A producer warpgroup (one
/// thread of it) issues the TMA copies; a "full" `mbarrier` per stage counts their bytes, an "empty" one counts
/// the consumer threads done with it. `setmaxnreg` gives the producer's registers to the consumers.
struct HopperPipeline {
    let resident: [HopperTile]
    let streamed: [HopperTile]
    let stages: Int
    let consumerWarps: Int
    /// Bytes for the kernel's own use after the barriers, at `scratch`.
    var scratchBytes = 0

    /// The tiles, barriers, scratch, and 1024 bytes to align the tiles for the 128-byte swizzle.
    var sharedMemoryBytes: Int {
        1024 + resident.map(\.bytes).reduce(0, +) + stages * streamed.map(\.bytes).reduce(0, +) + 8 * (1 + 2 * stages)
            + scratchBytes
    }

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
        let stageBytes = streamed.map(\.bytes).reduce(0, +)
        lines += [
            "unsigned char* const sRing = sharedTiles + \(offset);",
            "const auto stageBase = [&](int stage) { return sRing + stage * \(stageBytes); };",
            "fa_u64* const residentLoaded = (fa_u64*)(sRing + \(stages * stageBytes));",
            "fa_u64* const full = residentLoaded + 1;",
            "fa_u64* const empty = full + \(stages);",
            "unsigned char* const scratch = (unsigned char*)(empty + \(stages));",
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
        let stageBytes = streamed.map(\.bytes).reduce(0, +)
        return ([
            "asm volatile(\"setmaxnreg.dec.sync.aligned.u32 \(registers);\");",
            "if (warp == \(consumerWarps) && lane == 0) {",
            "    fa_mbarrier_expect_bytes(residentLoaded, \(resident.map(\.bytes).reduce(0, +)));",
        ] + loads(resident, at: residentAt, stage: nil, barrier: "residentLoaded").map { "    " + $0 } + [
            "    " + walk.open,
            "        const int stage = i % \(stages);",
            "        fa_mbarrier_wait(&empty[stage], (i / \(stages) + 1) & 1);",
            "        fa_mbarrier_expect_bytes(&full[stage], \(stageBytes));",
        ] + loads(streamed, at: streamedAt, stage: "stage", barrier: "&full[stage]").map { "        " + $0 } + [
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
