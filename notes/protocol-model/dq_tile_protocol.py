"""A model of HopperGradientKernel's hand-off of the dQ tile, run under random schedules (python3 dq_tile_protocol.py).

Actors: the two consumer warpgroups (each standing for its 128 threads), taking turns as WarpgroupTurns does, and
the dQ warp, with a random delay for its query block's turn. Barriers: dQFull (one arrival per group and step) and
dQEmpty (the dQ warp's, once it has read a tile), waited on by parity as `mbarrier.try_wait.parity` does (a wait for
parity p passes while the completed-phase count's parity differs from p, so a waiter two phases behind passes on the
older phase). It checks for deadlock, for the dQ warp reading a tile the groups have not finished writing, for a
group writing the tile while the dQ warp reads it, and for a group storing dS into a buffer a dQ product still reads.

With only the group that writes a step's tile waiting for the previous tile's hand-back (at D <= 64 the groups take
turns), schedules with three or five steps deadlock, read tiles before they are written and overwrite tiles being
read: what the full plain `flexattn check`
hit on 2026-11-27 (a hang at "attention with mask composed_2", D = 64, three query blocks per CTA; the sanitizers'
slower runs and the backward checks alone passed). With every consumer thread waiting (the kernel since then) no
schedule deadlocks or races.

With two dQ tiles used in turn (D <= 64 since 2026-11-27's fourth session: step v fills tile v % 2, its barriers'
phase v // 2, and every thread waits for the hand-back of step v - 2), the same checks pass.
"""
import random
class Barrier:
    def __init__(s, count): s.count, s.pending, s.completed = count, 0, 0
    def arrive(s):
        s.pending += 1
        if s.pending == s.count: s.pending, s.completed = 0, s.completed + 1
    def passes(s, parity): return s.completed % 2 != parity

def run(S, QC, everyone_waits, rng, T=1):
    full, empty = [Barrier(2) for _ in range(T)], [Barrier(1) for _ in range(T)]
    tokens = [1, 0]                      # group 1 opened the round: group 0 may take a turn
    tile = {}                            # half/column block -> step written
    dS_inflight = {0: set(), 1: set()}   # buffer -> set of groups whose dQ product reads it
    errors = []
    reading = [False] * T
    def sums(g, v): return QC == 2 or v % 2 == g
    def wg(g):
        def take():
            while tokens[g] == 0: yield False
            tokens[g] -= 1
        def give(): tokens[(g + 1) % 2] += 1
        issued = None
        for i in range(S + 1):
            last = i == S
            if not last:
                yield from take(); give(); yield True                     # T1: S, dP
            if last and S == 0: break
            yield from take()                                            # T2 (or the final turn)
            if not last:
                b = i % 2
                if dS_inflight[b]: errors.append(f"group {g} stores dS {i} over buffer {b} still read by {dS_inflight[b]}")
            v = i - 1
            if v >= 0 and sums(g, v): dS_inflight[v % 2].add(g); issued = v
            give(); yield True
            if issued is not None: dS_inflight[issued % 2].discard(g); issued = None   # wait<0>
            yield True
            if v >= 0:
                t, p = v % T, (v // T + 1) % 2
                if everyone_waits or sums(g, v):
                    while not empty[t].passes(p): yield False
                if sums(g, v):
                    key = (t, g if QC == 2 else 0)
                    if reading[t]: errors.append(f"group {g} writes tile {v} while the dQ warp reads it")
                    tile[key] = v
                yield True
                full[t].arrive(); yield True
        if g == 0:
            yield from take()                                            # WarpgroupTurns.finish
        yield True
    def dq_warp():
        for k in range(S):
            # the kernel waits with parity (k / T) & 1: passes iff completed % 2 != that
            t = k % T
            while not full[t].passes(k // T % 2): yield False
            for _ in range(rng.randint(0, 6)): yield True                  # waiting for the query block's turn
            reading[t] = True
            for key, want in ([((t, 0), k), ((t, 1), k)] if QC == 2 else [((t, 0), k)]):
                if tile.get(key) != want: errors.append(f"dQ warp reads tile {k} holding {tile.get(key)} in part {key}")
            for _ in range(rng.randint(1, 3)): yield True                  # the bulk copy reading the tile
            reading[t] = False
            empty[t].arrive(); yield True
    actors = [wg(0), wg(1), dq_warp()]
    alive = [True, True, True]
    stuck_rounds = 0
    while any(alive):
        order = [a for a in range(3) if alive[a]]
        rng.shuffle(order)
        progressed = False
        for a in order:
            try:
                if next(actors[a]): progressed = True; break
            except StopIteration:
                alive[a] = False; progressed = True; break
        if not progressed:
            stuck_rounds += 1
            if stuck_rounds > 50: return ["deadlock"] + errors
        else: stuck_rounds = 0
    return errors

for everyone, T in ((False, 1), (True, 1), (True, 2)):
    found = {}
    for QC in (1, 2):
        for S in range(1, 7):
            for trial in range(3000):
                errs = run(S, QC, everyone, random.Random(trial * 131 + S * 7 + QC), T)
                for e in errs:
                    kind = e if e == "deadlock" else e.split(" holding")[0].split(" tile")[0]
                    found.setdefault((QC, S), set()).add(kind)
    print(f"{T} tile(s),", "every thread waits" if everyone else "only the writers wait", "->",
          {k: sorted(v) for k, v in sorted(found.items())} if found else "no deadlock, no race")
