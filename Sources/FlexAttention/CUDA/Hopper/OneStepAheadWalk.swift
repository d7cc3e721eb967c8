/// The forward's consumer loop, one step ahead: step i's first products (S = Q Kᵀ) are issued in the same turn as
/// step i − 1's second products (P V), which take their A operand from registers; the elementwise work on step i's
/// first products (the softmax) then runs while the second products are on the tensor cores. Two commit groups:
/// `wait<1>` for the first, `wait<0>` for the second.
///
/// Each part is the kernel's text; `waits`, `releases` and `issueSecond` take the step as a C expression.
struct OneStepAheadWalk {
    /// The statements that wait for step i's tiles the first products read, issue them (one commit group), and pin
    /// their accumulators once they are done; and the hand-back of the tiles only they read.
    let waitFirst: (String) -> String
    let issueFirst: String
    let pinFirst: String
    let releaseFirst: (String) -> String
    /// The work on step i's finished first products; it must end each branch it opens, so the wait after it starts
    /// a block of its own (ptxas moves a `wgmma` wait to the top of its block, before any work that shares it).
    let elementwise: String
    /// The same for the second products of a step, and what follows their completion before the next step's A
    /// operand is packed by `pack`.
    let waitSecond: (String) -> String
    let issueSecond: (String) -> String
    let pinSecond: String
    let releaseSecond: (String) -> String
    let afterSecond: String
    let pack: String

    /// The loop over `steps` steps (`i` is the step; ``WarpgroupTurns``' `awaitTurn` and `passTurn` in scope).
    var source: String {
        """
        if (steps > 0) {
                    // Step 0: its first products alone.
                    int i = 0;
                    \(waitFirst("i"))
                    awaitTurn();
                    fa_wgmma_fence();
                    \(issueFirst)
                    passTurn();
                    fa_wgmma_wait<0>();
                    \(pinFirst)
                    \(releaseFirst("i"))
                    \(elementwise)
                    \(pack)

                    // Steps 1 ..< steps: the first products of step i beside the second of step i − 1.
                    for (i = 1; i < steps; ++i) {
                        \(waitFirst("i"))
                        \(waitSecond("i - 1"))
                        awaitTurn();
                        fa_wgmma_fence();
                        \(issueFirst)
                        \(issueSecond("i - 1"))
                        passTurn();
                        fa_wgmma_wait<1>();
                        \(pinFirst)
                        \(releaseFirst("i"))
                        \(elementwise)
                        fa_wgmma_wait<0>();
                        \(pinSecond)
                        \(releaseSecond("i - 1"))
                        \(afterSecond)
                        \(pack)
                    }

                    // The last step's second products.
                    \(waitSecond("steps - 1"))
                    awaitTurn();
                    fa_wgmma_fence();
                    \(issueSecond("steps - 1"))
                    passTurn();
                    fa_wgmma_wait<0>();
                    \(pinSecond)
                    \(releaseSecond("steps - 1"))
                }
        """
    }
}
