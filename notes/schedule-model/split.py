# The event model of turns.py with long causal walks split into pieces of at most `maxwalk` query blocks (each a CTA
# of its own, dK and dV merged afterwards), the turn order unchanged (highest key block first), pieces launched level
# by level in bands. Prints makespan over the ideal. Run: python3 notes/schedule-model/split.py
from collections import defaultdict
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
source = open(os.path.join(os.path.dirname(__file__), "turns.py")).read().split("for name,heads")[0]
exec(source)  # simulate()

def split_case(heads, KB, QB, ratio, band, maxwalk, upper_first):
    walks = {}; turnorder = defaultdict(list); order = []
    for first in range(0, heads, band):
        for lvl in range(KB - 1, -1, -1):
            for h in range(first, min(first + band, heads)):
                qs = list(range(lvl * ratio, QB))
                pieces = max(1, -(-len(qs) // maxwalk)) if maxwalk else 1
                size = -(-len(qs) // pieces)
                parts = [qs[i:i + size] for i in range(0, len(qs), size)]
                for i, part in enumerate(parts[::-1] if upper_first else parts):
                    order.append((h, (lvl, i))); walks[(h, (lvl, i))] = part
    for key in order:
        for q in walks[key]: turnorder[(key[0], q)].append(key[1])
    return order, walks, turnorder

for name, heads, KB, QB, ratio, band, splits in [
        ("D256 S8192", 16, 128, 128, 1, 2, [0, 64, 32]), ("D128 S8192", 32, 64, 128, 2, 3, [0, 64, 32]),
        ("D128 S16384", 16, 128, 256, 2, 2, [0, 128, 64]), ("D128 S2048", 128, 16, 32, 2, 9, [0, 16, 8])]:
    for maxwalk in splits:
        for upper_first in [True, False]:
            r = simulate(*split_case(heads, KB, QB, ratio, band, maxwalk, upper_first))
            print(name, "max walk", maxwalk or "unsplit", "upper piece first" if upper_first else "lower piece first",
                  round(r, 3), flush=True)
