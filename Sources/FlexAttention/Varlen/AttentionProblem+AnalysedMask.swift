extension AttentionProblem {
    /// This problem with its mask analysed now into a ``BlockMask`` at the CPU's block size, which the CPU loops and
    /// the non-finite handling use as they are (and a plan rebuilds at its kernels' sizes). Building it checks the
    /// mask over the problem's domain, so a packed call that analyses every sequence's mask first raises a mask's
    /// error before any sequence runs. Itself when there is no mask to analyse (none, the built-in causal alone, or
    /// one analysed already).
    func analysingMask() throws -> AttentionProblem {
        guard let mask, !isCausalOnly, blockMask == nil, !shape.isEmpty else { return self }
        let blocks = try BlockMask(
            mask, batch: shape.batch, heads: shape.queryHeads, queryLength: shape.queryLength, keyLength: shape.keyLength)
        return AttentionProblem(self, analysedMask: blocks)
    }

    /// `problem` with `blocks`, the analysis of its mask.
    private init(_ problem: AttentionProblem, analysedMask blocks: BlockMask) {
        (shape, scale, mask, scoreMod, options) =
            (problem.shape, problem.scale, problem.mask, problem.scoreMod, problem.options)
        blockMask = blocks
        isCausalOnly = false
    }
}
