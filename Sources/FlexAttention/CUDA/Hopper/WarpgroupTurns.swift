/// Consumer warpgroups taking turns to issue their `wgmma`s, so that the tensor cores work for one group while the
/// others are in their softmax or other elementwise work (FlashAttention-3's "ping-pong"). Named barrier
/// `1 + g` is group g's turn: a group waits for it before it issues a batch of products and passes the turn to the
/// next group once they are committed. The last group opens the round as if it had just had its turn, and group 0
/// takes one more turn after its walk, so every arrival meets a wait whatever the number of steps; every group
/// must issue the same number of batches.
struct WarpgroupTurns {
    let groups: Int

    /// Statements for the start of the consumers' branch, `group` being this thread's consumer warpgroup: the
    /// `awaitTurn` and `passTurn` lambdas, and the opening turn.
    func start(group: String) -> String {
        """
        const auto awaitTurn = [&]() { fa_named_barrier_sync(1 + \(group), 256); };
            const auto passTurn = [&]() { fa_named_barrier_arrive(1 + (\(group) + 1) % \(groups), 256); };
            if (\(group) == \(groups - 1)) passTurn();
        """
    }

    /// The statement after a group's walk that takes the last turn passed to group 0.
    func finish(group: String) -> String {
        "if (\(group) == 0) awaitTurn();"
    }
}
