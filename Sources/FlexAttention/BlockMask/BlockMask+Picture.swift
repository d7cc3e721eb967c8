extension BlockMask {
    /// One line: sizes, kept blocks and sparsity.
    public var description: String {
        let (full, partial) = keptBlockCounts
        let scope = [dependsOnBatch ? "per batch" : nil, dependsOnHead ? "per head" : nil].compactMap { $0 }
        return "BlockMask \(queryLength)×\(keyLength) in \(queryBlockSize)×\(keyBlockSize) blocks"
            + " (\(scope.isEmpty ? "shared by all batches and heads" : scope.joined(separator: ", "))):"
            + " \(full) full, \(partial) partial, sparsity \(Self.percent(sparsity))"
    }

    /// A picture of the blocks of one (batch, head), query blocks down and key blocks across: `█` full, `░`
    /// partial, `·` empty. Past `maxSize` blocks along an axis, each character stands for several blocks and is
    /// full or empty only when all of them are. Ends with the sparsity.
    public func picture(batch: Int = 0, head: Int = 0, maxSize: Int = 64) -> String {
        let rowsPerCharacter = (queryBlockCount + maxSize - 1) / max(1, maxSize)
        let columnsPerCharacter = (keyBlockCount + maxSize - 1) / max(1, maxSize)
        let width = (keyBlockCount + columnsPerCharacter - 1) / columnsPerCharacter
        var text = ""
        for firstRow in stride(from: 0, to: queryBlockCount, by: rowsPerCharacter) {
            // Per character: whether some block is kept, whether all are full.
            var kept = [Bool](repeating: false, count: width)
            var allFull = [Bool](repeating: true, count: width)
            for row in firstRow..<min(firstRow + rowsPerCharacter, queryBlockCount) {
                var kinds = [UInt8](repeating: 0, count: keyBlockCount)  // 0 empty, 1 partial, 2 full
                let line = line(batch: batch, head: head, block: row, blocksPerLine: queryBlockCount)
                for run in byQueryBlock.runs(line: line) {
                    for block in run.blocks { kinds[block] = run.isFull ? 2 : 1 }
                }
                for (block, kind) in kinds.enumerated() {
                    kept[block / columnsPerCharacter] = kept[block / columnsPerCharacter] || kind > 0
                    allFull[block / columnsPerCharacter] = allFull[block / columnsPerCharacter] && kind == 2
                }
            }
            text += String(zip(kept, allFull).map { !$0 ? "·" : $1 ? "█" : "░" }) + "\n"
        }
        return text + "sparsity \(Self.percent(sparsity))\n"
    }

    private static func percent(_ fraction: Double) -> String {
        let tenths = Int((fraction * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }
}
