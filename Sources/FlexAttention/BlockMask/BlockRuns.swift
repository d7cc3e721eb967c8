/// The kept blocks of a block mask along one axis, as runs: for each line (one block of the major axis for one
/// batch and head), the runs of minor-axis blocks that are all full or all partial. Blocks in no run are empty.
/// Masks keep contiguous bands, so runs take memory in proportion to the lines, not to the blocks kept.
struct BlockRuns: Sendable {
    struct Run: Equatable, Sendable {
        var blocks: Range<Int>
        var isFull: Bool
    }

    /// Lines' runs, concatenated: line `i` owns `runs[lineStarts[i]..<lineStarts[i + 1]]`.
    private(set) var lineStarts: [Int] = [0]
    private(set) var runs: [Run] = []

    /// Appends blocks to the current line, joining them to the last run when they continue it.
    mutating func append(_ blocks: Range<Int>, isFull: Bool) {
        if let last = runs.last, runs.count > lineStarts[lineStarts.count - 1], last.isFull == isFull,
           last.blocks.upperBound == blocks.lowerBound {
            runs[runs.count - 1].blocks = last.blocks.lowerBound..<blocks.upperBound
        } else {
            runs.append(Run(blocks: blocks, isFull: isFull))
        }
    }

    /// Closes the current line.
    mutating func endLine() { lineStarts.append(runs.count) }

    func runs(line: Int) -> ArraySlice<Run> { runs[lineStarts[line]..<lineStarts[line + 1]] }

    /// The blocks of one line that are full (`isFull`) or partial, in order.
    func blocks(line: Int, isFull: Bool) -> [Int] {
        runs(line: line).filter { $0.isFull == isFull }.flatMap { Array($0.blocks) }
    }

    /// Number of full (`isFull`) or partial blocks over all lines.
    func count(isFull: Bool) -> Int {
        runs.reduce(0) { $0 + ($1.isFull == isFull ? $1.blocks.count : 0) }
    }

    /// The minor-axis blocks of width `size` that the major-axis elements `major` must visit, given lines of
    /// `lineSize` elements starting at line `firstLine` and minor blocks of `minorBlockSize` over `minorCount`
    /// elements. A visited block needs the mask unless every block it overlaps, on every line, is full.
    func visited(
        firstLine: Int, lineSize: Int, major: Range<Int>, minorBlockSize: Int, minorCount: Int, size: Int
    ) -> [VisitedBlock] {
        let count = (minorCount + size - 1) / size
        var kept = [Bool](repeating: false, count: count)
        var allFull = [Bool](repeating: true, count: count)
        // The visited blocks that overlap minor blocks `blocks`.
        func overlapped(_ blocks: Range<Int>) -> Range<Int> {
            let end = min(blocks.upperBound * minorBlockSize, minorCount)
            let elements = min(blocks.lowerBound * minorBlockSize, end)..<end
            return elements.isEmpty ? 0..<0 : (elements.lowerBound / size)..<((elements.upperBound - 1) / size + 1)
        }
        let minorBlocks = (minorCount + minorBlockSize - 1) / minorBlockSize
        for line in (major.lowerBound / lineSize)...((major.upperBound - 1) / lineSize) {
            var cursor = 0
            for run in runs(line: firstLine + line) {
                for block in overlapped(cursor..<run.blocks.lowerBound) { allFull[block] = false }
                for block in overlapped(run.blocks) {
                    kept[block] = true
                    if !run.isFull { allFull[block] = false }
                }
                cursor = run.blocks.upperBound
            }
            for block in overlapped(cursor..<minorBlocks) { allFull[block] = false }
        }
        return (0..<count).filter { kept[$0] }.map {
            VisitedBlock(range: ($0 * size)..<min(($0 + 1) * size, minorCount), needsMask: !allFull[$0])
        }
    }
}
