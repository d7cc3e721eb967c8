import Testing
@testable import FlexAttention

/// The ring's schedule, without GPUs: which pairs each rank computes at each step, which rows travel, and (run on
/// the CPU pair by pair, merged in the schedule's order) that it gives attention over the whole sequence.
@Suite("Context-parallel schedule")
struct ContextParallelScheduleTests {
    private func shape(_ length: Int, heads: Int = 4, keyValueHeads: Int = 2, headDim: Int = 16) throws -> AttentionShape {
        try AttentionShape(batch: 1, queryHeads: heads, keyValueHeads: keyValueHeads, queryLength: length,
                           headDim: headDim, dtype: .float32)
    }

    @Test("causal zigzag: every rank does the same work at every step, and nothing is skipped")
    func causalBalance() throws {
        for ranks in [2, 4] {
            let length = 2 * ranks * 256
            let schedule = try ContextParallelSchedule(
                shape: shape(length), options: .init(isCausal: true), worldSize: ranks)
            for rank in 0..<ranks {
                #expect(schedule.steps[rank][0].pairs.map(\.kind) == [.causal, .full, .causal])
                for step in 1..<ranks {
                    let work = schedule.steps[rank][step]
                    #expect(work.pairs.count == 2 && work.pairs.allSatisfy { $0.kind == .full }, "rank \(rank) step \(step)")
                    #expect(work.source == (rank - step + ranks) % ranks)
                    // Whole chunks: the earlier source's first (for both query chunks), or all of a later one's.
                    let chunks = Set(work.pairs.map(\.keyChunk)).count
                    #expect(chunks == (work.source < rank ? 1 : 2))
                    #expect(schedule.rowsReceived(rank: rank, step: step) == chunks * schedule.chunkLength)
                }
            }
        }
    }

    @Test("a sliding window talks only to neighbours, and sends them a halo")
    func windowNeighbours() throws {
        let ranks = 4
        let schedule = try ContextParallelSchedule(
            shape: shape(2 * ranks * 512), options: .init(mask: .slidingWindow(200)), worldSize: ranks)
        for rank in 0..<ranks {
            for step in 1..<ranks - 1 where step != 1 {
                #expect(schedule.steps[rank][step].isEmpty, "rank \(rank) step \(step)")
            }
            // Chunk i needs the last 199 rows of chunk i − 1, which are 256 rows in whole runs of 128.
            let neighbours = [1, ranks - 1].map { schedule.rowsReceived(rank: rank, step: $0) }
            #expect(neighbours.allSatisfy { $0 == 0 || $0 == 256 }, "rank \(rank): \(neighbours)")
        }
        // Rank 0's first chunk starts the sequence and its last ends it: it needs only rank 1's second chunk.
        #expect(schedule.steps[0][1].isEmpty && schedule.rowsReceived(rank: 0, step: ranks - 1) == 256)
        let contiguous = try ContextParallelSchedule(
            shape: shape(2 * ranks * 512), options: .init(mask: .slidingWindow(200)), worldSize: ranks,
            layout: .contiguous)
        #expect((0..<ranks).allSatisfy { rank in (2..<ranks).allSatisfy { contiguous.steps[rank][$0].isEmpty } })
    }

    @Test("shards of host tensors hold their ranks' chunks and gather back to the whole", arguments: [1, 2, 3])
    func shardAndGather(ranks: Int) throws {
        var rng = SeededRandom(seed: freshSeed())
        let whole = try randomTensor([2, 3, 2 * ranks * 5, 4], dtype: .bfloat16, rng: &rng)
        for layout in [ContextParallelLayout.zigzag, .contiguous] {
            let shards = try (0..<ranks).map { try layout.shard(whole, rank: $0, worldSize: ranks) }
            for (rank, shard) in shards.enumerated() {
                let rows = layout.positions(rank: rank, worldSize: ranks, length: whole.shape[2])
                let expected = try rows.map { try whole.narrowed(axis: 2, range: $0).floats() }
                let got = try [0..<5, 5..<10].map { try shard.narrowed(axis: 2, range: $0).floats() }
                #expect(got.count == 2 && zip(got, expected).allSatisfy { $0 == $1 }, "\(layout) rank \(rank)")
            }
            #expect(try layout.gather(shards).floats() == whole.floats())
        }
        #expect(ContextParallelLayout.zigzag.chunks(rank: 0, worldSize: 4) == [0, 7])
        #expect(throws: FlexAttentionError.self) { try ContextParallelLayout.zigzag.shard(whole, rank: ranks, worldSize: ranks) }
        #expect(throws: FlexAttentionError.self) {
            try ContextParallelLayout.zigzag.shard(whole, rank: 0, worldSize: 4 * ranks)
        }
    }

    @Test("lengths that do not split, and queries and keys of different lengths, are refused")
    func refusals() throws {
        #expect(throws: FlexAttentionError.self) {
            try ContextParallelSchedule(shape: shape(1000), worldSize: 2)
        }
        #expect(throws: FlexAttentionError.self) {
            try ContextParallelSchedule(
                shape: AttentionShape(batch: 1, queryHeads: 2, keyValueHeads: 2, queryLength: 512, keyLength: 1024,
                                      headDim: 16, dtype: .float32),
                worldSize: 2)
        }
        #expect(throws: FlexAttentionError.self) { try ContextParallelSchedule(shape: shape(512), worldSize: 0) }
    }

    @Test("pairs run on the CPU at their global positions and merged in order give whole-sequence attention",
          arguments: [2, 3])
    func ringOnCPU(ranks: Int) throws {
        var rng = SeededRandom(seed: freshSeed())
        let length = 2 * ranks * 128
        let ids = (0..<length).map { $0 < 100 ? 0 : $0 < 101 ? 1 : $0 < 300 ? 2 : 3 }
        // The window's chunks are 384 rows, so that its halo (the last 99 rows, a run of 128) is part of a chunk.
        let cases: [(String, AttentionOptions, Int, Int)] = [
            ("causal", .init(isCausal: true), 1, length),
            ("window 100", .init(mask: .slidingWindow(100)), 1, 3 * length),
            ("documents", .init(mask: try .documentCausal(ids: ids)), 1, length),
            ("soft-cap, causal", .init(isCausal: true, scoreMod: .softCap(2)), 1, length),
            ("ALiBi, two head groups", .init(isCausal: true, scoreMod: try .alibi(heads: 4)), 2, length),
        ]
        for (name, options, headGroups, length) in cases {
            let whole = try shape(length)
            let (q, k, v) = try (randomTensor(whole.queryShape, rng: &rng), randomTensor(whole.keyShape, rng: &rng),
                                 randomTensor(whole.valueShape, rng: &rng))
            let reference = try Attention().forward(query: q, key: k, value: v, options: options)
            let problem = try AttentionProblem(shape: whole, options: options)
            let schedule = try ContextParallelSchedule(problem, worldSize: ranks, layout: .zigzag)
            var worst = 0.0
            for rank in 0..<ranks {
                for chunk in 0..<2 {
                    let global = schedule.globalChunk(rank: rank, local: chunk) * schedule.chunkLength
                    let rows = global..<global + schedule.chunkLength
                    for headGroup in 0..<headGroups {
                        var parts = [AttentionOutput]()
                        for step in schedule.steps[rank] {
                            for pair in step.pairs where pair.queryChunk == chunk {
                                let key = try ContextParallelPlan.pairPlanKey(
                                    problem, schedule: schedule, rank: rank, step: step, pair: pair,
                                    headGroup: headGroup, headGroups: headGroups, device: 0)
                                let start = schedule.globalChunk(rank: step.source, local: pair.keyChunk)
                                    * schedule.chunkLength + step.keyRows[pair.keyChunk].lowerBound
                                let keys = start..<start + step.keyRows[pair.keyChunk].count
                                let (qh, kvh) = (key.shape.queryHeads, key.shape.keyValueHeads)
                                parts.append(try Attention().forward(
                                    query: q.narrowed(axis: 1, range: headGroup * qh..<(headGroup + 1) * qh)
                                        .narrowed(axis: 2, range: rows),
                                    key: k.narrowed(axis: 1, range: headGroup * kvh..<(headGroup + 1) * kvh)
                                        .narrowed(axis: 2, range: keys),
                                    value: v.narrowed(axis: 1, range: headGroup * kvh..<(headGroup + 1) * kvh)
                                        .narrowed(axis: 2, range: keys),
                                    options: key.options))
                            }
                        }
                        let heads = headGroup * 4 / headGroups..<(headGroup + 1) * 4 / headGroups
                        let expected = try reference.output.narrowed(axis: 1, range: heads).narrowed(axis: 2, range: rows)
                        try #require(!parts.isEmpty, "\(name): rank \(rank) chunk \(chunk) has no pairs")
                        let merged = try AttentionOutput.merging(parts)
                        let error = relativeError(merged.output.floats(), expected.floats().map(Double.init))
                        worst = max(worst, error)
                    }
                }
            }
            #expect(worst < 1e-5, "\(name), \(ranks) ranks: relative error \(worst)")
        }
    }
}
