/// How a kernel's CTAs take their tiles, numbered in launch order: one tile per CTA (`tile = blockIdx.x`, the
/// hardware dispatching CTAs as multiprocessors free up), or persistent, one CTA per multiprocessor taking the next
/// tile from a counter as it starts one (FlashAttention-3's dynamic scheduler).
///
/// Persistent CTAs load a tile's resident operands and the first stages of its walk while the tile before runs,
/// instead of at a new CTA's start; that pays where walks are short (forward at S = 2048: +5% dense and +13% causal
/// at D = 64, +1% at D = 128). Taking tiles from a counter keeps the tiles in flight a compact window of the order,
/// as the hardware's dispatch does: striding statically by the grid let the CTAs drift apart (−2% at D = 128,
/// S = 8192, likely from less L2 reuse of K and V) and balanced causal walks badly (−5% at D = 256). Where walks are long it
/// still lost 1–4% (notes/hopper.md, seventh pass), so kernels choose it by shape.
///
/// The producer thread takes tile `blockIdx.x` first and then `gridDim.x +` the counter `tileCounter` (zeroed per
/// launch), writes each into `scheduledTile` before its arrival on `residentLoaded`, and writes `tiles` (no more
/// work) when the counter runs out; consumers read it after their wait and before they hand the tile's resident
/// operands back on `residentEmpty`. `setup` defines a tile's coordinates and walk (`begin ..< end`) from `tile`;
/// `n` counts the CTA's tiles (the parity of the resident barriers) and `streamed` the steps of its tiles before.
struct TileSchedule {
    let persistent: Bool
    let setup: String

    /// The producer's part: `body` loads tile `tile`'s resident tiles and streams its walk.
    func producer(_ body: [String]) -> [String] {
        guard persistent else {
            return ["const int tile = blockIdx.x, streamed = 0;", setup] + body
        }
        return [
            "int streamed = 0;",
            "for (int n = 0, tile = blockIdx.x; ; ++n) {",
            "    if (n > 0) fa_mbarrier_wait(residentEmpty, (n - 1) & 1);",
            "    *scheduledTile = tile;",
            "    if (tile >= tiles) {  // no more work: the consumers leave their loop",
            "        fa_mbarrier_arrive(residentLoaded);",
            "        break;",
            "    }",
            "    const int next = gridDim.x + atomicAdd(tileCounter, 1);",
            "    " + setup,
        ] + body.map { "    " + $0 } + [
            "    streamed += end - begin;",
            "    tile = next;",
            "}",
        ]
    }

    /// The consumers' part up to the tile's setup, after which the resident tiles have landed.
    var consumerOpen: String {
        guard persistent else {
            return """
            {
                        const int tile = blockIdx.x, n = 0, streamed = 0;
                        fa_mbarrier_wait(residentLoaded, 0);
                        \(setup)
            """
        }
        return """
        int streamed = 0;
                for (int n = 0; ; ++n) {
                    fa_mbarrier_wait(residentLoaded, n & 1);
                    const int tile = *scheduledTile;
                    if (tile >= tiles) break;
                    \(setup)
        """
    }
    /// The end of a consumer's tile, after its epilogue.
    var consumerClose: String { persistent ? "streamed += end - begin;\n}" : "}" }

    /// CTAs to launch for `tiles` tiles on `multiprocessors` (a persistent kernel fits one on each).
    func grid(tiles: Int, multiprocessors: Int) -> Int { persistent ? min(tiles, max(multiprocessors, 1)) : tiles }
}
