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

/// Shared memory a kernel writes and reads itself (not loaded by copies), `bytes` a multiple of 1024 so the regions
/// after it stay aligned for the 128-byte swizzle; addressed in the kernel as `pointer`.
struct HopperScratch {
    let pointer: String
    let bytes: Int
}

/// An `mbarrier` beside the pipeline's, for a hand-off of the kernel's own (such as a buffer between the consumers
/// and a producer thread), addressed in the kernel as `pointer` and completing a phase after `arrivals` arrivals;
/// `count` of them in a row where the kernel hands off several buffers in turn.
struct HopperHandoff {
    let pointer: String
    let arrivals: Int
    var count = 1
}

/// Tiles streamed together through a ring of stages, one set per step of a kernel's walk, with the bulk copies that
/// ride along: a "full" `mbarrier` per stage counts their bytes, an "empty" one the consumer threads done with it.
/// Tiles a kernel stops reading at different times go in rings of their own, so each is handed back, and the next
/// step's copy into it started, as early as possible.
struct HopperRing {
    let tiles: [HopperTile]
    var copies: [HopperBulkCopy] = []
    /// Arrivals that hand a stage back: one per consumer thread, or this many where the kernel hands stages back
    /// itself (a stage reused as scratch once read).
    var handBackArrivals: Int? = nil

    /// What one stage's copies bring, and the stage's size: rounded up so every stage's tiles start 1024-aligned; a
    /// ring of bulk copies alone needs 128 bytes (it must come after the rings with tiles).
    var loadedBytes: Int { tiles.map(\.bytes).reduce(0, +) + copies.map(\.bytes).reduce(0, +) }
    var stageBytes: Int {
        let alignment = tiles.isEmpty ? 128 : 1024
        return (loadedBytes + alignment - 1) / alignment * alignment
    }
}

/// The warp-specialised pipeline the Hopper kernels share: tiles resident for the whole CTA, loaded once, scratch
/// the kernel uses itself, and rings of `stages` buffers for the tiles streamed per step. A producer warpgroup
/// (one thread of it) issues the TMA copies; `setmaxnreg` gives the producer's registers to the consumers.
struct HopperPipeline {
    let resident: [HopperTile]
    var scratch: [HopperScratch] = []
    let rings: [HopperRing]
    let stages: Int
    let consumerWarps: Int
    var handoffs: [HopperHandoff] = []
    /// Whether the kernel is persistent (``TileSchedule``): `scheduledTile`, an `int` after the barriers, passes
    /// each tile's index from the producer to the consumers.
    var schedulesTiles = false

    /// The tiles, scratch, barriers, and 1024 bytes to align the tiles for the 128-byte swizzle.
    var sharedMemoryBytes: Int {
        1024 + resident.map(\.bytes).reduce(0, +) + scratch.map(\.bytes).reduce(0, +)
            + stages * rings.map(\.stageBytes).reduce(0, +) + 8 * (1 + 2 * rings.count * stages + handoffBarriers)
            + (schedulesTiles ? 8 : 0)
    }

    private var handoffBarriers: Int { handoffs.map(\.count).reduce(0, +) }

    /// Carves shared memory (resident tiles and scratch by name; ring r's stages at `ringBase<r>(stage)`) and
    /// initialises the barriers: `full` and `empty` hold ring r's stage s at `r * stages + s`; the hand-offs follow.
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
        for region in scratch {
            lines.append("unsigned char* const \(region.pointer) = sharedTiles + \(offset);")
            offset += region.bytes
        }
        for (r, ring) in rings.enumerated() {
            lines.append("const auto ringBase\(r) = [&](int stage) { return sharedTiles + \(offset) + stage * \(ring.stageBytes); };")
            offset += stages * ring.stageBytes
        }
        lines += [
            "fa_u64* const residentLoaded = (fa_u64*)(sharedTiles + \(offset));",
            "fa_u64* const full = residentLoaded + 1;",
            "fa_u64* const empty = full + \(rings.count * stages);",
        ] + handoffs.indices.map { index in
            let first = rings.count * stages + handoffs[..<index].map(\.count).reduce(0, +)
            return "fa_u64* const \(handoffs[index].pointer) = empty + \(first);"
        } + (schedulesTiles ? ["int* const scheduledTile = (int*)(empty + \(rings.count * stages + handoffBarriers));"] : []) + [
            "if (threadIdx.x == 0) {",
            "    fa_mbarrier_init(residentLoaded, 1);",
        ] + barrierInitialisation + handoffs.map { handoff in
            handoff.count == 1
                ? "    fa_mbarrier_init(\(handoff.pointer), \(handoff.arrivals));"
                : "    for (int i = 0; i < \(handoff.count); ++i) fa_mbarrier_init(&\(handoff.pointer)[i], \(handoff.arrivals));"
        } + [
            "    asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");",
            "}",
            "__syncthreads();",
        ]
        return lines.joined(separator: "\n    ")
    }

    /// Every ring's `full` barriers (the producer's one arrival) and `empty` ones (the hand-back arrivals), one
    /// loop per run of consecutive rings handed back alike.
    private var barrierInitialisation: [String] {
        let arrivals = rings.map { $0.handBackArrivals ?? 32 * consumerWarps }
        let runStarts = arrivals.indices.filter { $0 == 0 || arrivals[$0] != arrivals[$0 - 1] }
        return zip(runStarts, runStarts.dropFirst() + [rings.count]).flatMap { start, end in [
            "    for (int i = \(start * stages); i < \(end * stages); ++i) {",
            "        fa_mbarrier_init(&full[i], 1);",
            "        fa_mbarrier_init(&empty[i], \(arrivals[start]));\(arrivals[start] == 32 * consumerWarps ? "  // one arrival per consumer thread" : "")",
            "    }",
        ] }
    }

    /// The ring that streams `tile`, or carries `copy`.
    private func ring(of tile: HopperTile) -> Int { rings.firstIndex { $0.tiles.contains { $0.pointer == tile.pointer } } ?? 0 }
    private func ring(of copy: HopperBulkCopy) -> Int { rings.firstIndex { $0.copies.contains { $0.pointer == copy.pointer } } ?? 0 }

    /// The streamed tile `tile`'s pointer in stage `stage`.
    func pointer(_ tile: HopperTile, stage: String) -> String {
        let r = ring(of: tile)
        let offset = rings[r].tiles.prefix { $0.pointer != tile.pointer }.map(\.bytes).reduce(0, +)
        return "(ringBase\(r)(\(stage)) + \(offset))"
    }

    /// The bulk copy `copy`'s pointer in stage `stage`.
    func pointer(_ copy: HopperBulkCopy, stage: String) -> String {
        let r = ring(of: copy)
        let offset = rings[r].tiles.map(\.bytes).reduce(0, +)
            + rings[r].copies.prefix { $0.pointer != copy.pointer }.map(\.bytes).reduce(0, +)
        return "(ringBase\(r)(\(stage)) + \(offset))"
    }

    /// The producer warpgroup's branch: loads the resident tiles at (row, head) coordinates `residentAt`, then for
    /// each step of the kernel's walk and each ring waits for the step's stage to be free and loads the ring's tiles
    /// at `streamedAt`. `walk.open` opens the loops and defines the running step index `i` and the coordinates (it may
    /// read the block list: before the wait, which would delay the read); `walk.close` closes them.
    ///
    /// A kernel that numbers its tiles passes its `tiles` schedule; a persistent CTA loads the resident tiles once
    /// per tile, each time after the consumers handed the previous tile's back on `residentEmpty`
    /// (``residentHandoff``), and runs the rings on across tiles, so the walk's `i` must count from `streamed`.
    func producer(residentAt: (row: String, head: String), streamedAt: (row: String, head: String),
                  walk: (open: String, close: String), registers: Int, tiles: TileSchedule? = nil) -> String {
        func loads(_ tiles: [HopperTile], at: (row: String, head: String), stage: String?, barrier: String) -> [String] {
            tiles.map { tile in
                let target = stage.map { pointer(tile, stage: $0) } ?? tile.pointer
                return "for (int c = 0; c < \(tile.columnBlocks); ++c) fa_tma_load(\(target) + c * \(tile.rows * 128), "
                    + "&\(tile.map), 64 * c, \(at.row), \(at.head), b, \(barrier));"
            }
        }
        let streamedLoads = rings.enumerated().flatMap { r, ring in
            let barrier = "&full[\(r * stages) + stage]"
            return [
                "fa_mbarrier_wait(&empty[\(r * stages) + stage], (i / \(stages) + 1) & 1);",
                "fa_mbarrier_expect_bytes(\(barrier), \(ring.loadedBytes));",
            ] + loads(ring.tiles, at: streamedAt, stage: "stage", barrier: barrier) + ring.copies.map { copy in
                "fa_bulk_load(\(pointer(copy, stage: "stage")), \(copy.source), \(copy.bytes), \(barrier));"
            }
        }
        let residentLoads = [
            "fa_mbarrier_expect_bytes(residentLoaded, \(resident.map(\.bytes).reduce(0, +)));",
        ] + loads(resident, at: residentAt, stage: nil, barrier: "residentLoaded")
        let walkLoads = [walk.open, "    const int stage = i % \(stages);"] + streamedLoads.map { "    " + $0 } + [walk.close]
        let body = tiles.map { $0.producer(residentLoads + walkLoads) } ?? residentLoads + walkLoads
        return ([
            "asm volatile(\"setmaxnreg.dec.sync.aligned.u32 \(registers);\");",
            "if (warp == \(consumerWarps) && lane == 0) {",
        ] + body.map { "    " + $0 } + ["}"]).joined(separator: "\n        ")
    }

    /// The hand-back of the resident tiles: every consumer thread arrives once per tile, after its last read of them;
    /// a persistent kernel's producer waits for it before it loads the next tile's.
    var residentHandoff: HopperHandoff { HopperHandoff(pointer: "residentEmpty", arrivals: 32 * consumerWarps) }
    /// A consumer thread's hand-back of the resident tiles (``residentHandoff``).
    var releaseResident: String { "fa_mbarrier_arrive(\(residentHandoff.pointer));" }

    /// The forward and dQ kernels' walk: the block list's line of key blocks (`begin ..< end`, `entryAt`), with the
    /// step's first key `k0` (blocks of `keyBlock`) and whether the mask must be applied, `partial`; the running step
    /// `i` counts from `streamed` where the rings run on across a persistent kernel's tiles.
    static func keyBlockWalk(keyBlock: String, streamed: String? = nil) -> (open: String, close: String) {
        ("""
        for (int step = begin; step < end; ++step) {
                    const int i = \(streamed.map { "\($0) + " } ?? "")step - begin;
                    \(keyBlockEntry(step: "step", keyBlock: keyBlock))
        """, "}")
    }

    /// The block list's entry at `step`: its first key `k0` (blocks of `keyBlock`) and `partial`, whether the mask
    /// must be applied.
    static func keyBlockEntry(step: String, keyBlock: String) -> String {
        "const int entry = entryAt(\(step)), k0 = (entry >> 1) * \(keyBlock);\n"
            + "const bool partial = (entry & 1) != 0;"
    }

    /// Consumer statements: wait for step `step`'s tiles of ring `ring`, and hand its stage back (after the last
    /// read of it).
    func waitFull(ring: Int = 0, step: String) -> String {
        "fa_mbarrier_wait(&full[\(ring * stages) + (\(step)) % \(stages)], ((\(step)) / \(stages)) & 1);"
    }
    /// Every consumer thread arrives for itself: an arrival orders only its own thread's reads before the
    /// producer's next copy into the stage (racecheck reports a lane's ordinary reads of a stage as racing with the
    /// next bulk copy when lane 0 arrives for its warp after `__syncwarp`: notes/racecheck-probe/).
    func release(ring: Int = 0, step: String) -> String {
        "fa_mbarrier_arrive(&empty[\(ring * stages) + (\(step)) % \(stages)]);"
    }
}
