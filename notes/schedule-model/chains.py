# The event model of turns.py with each head's key blocks split into `n` contiguous ranges, each its own dQ turn chain
# (its own Float32 sums, which the finish would add in a fixed order), the lowest range (the longest causal walks)
# launched first. Prints makespan over the ideal. Run: python3 notes/schedule-model/chains.py
from collections import defaultdict
import os
source = open(os.path.join(os.path.dirname(__file__), "turns.py")).read().split("for name,heads")[0]
exec(source)  # simulate()

def chains_case(heads, KB, QB, ratio, band, chains):
    walks = {}; turnorder = defaultdict(list); order = []
    bounds = [KB * c // chains for c in range(chains + 1)]
    for first in range(0, heads, band):
        for c in range(chains):
            for lvl in range(bounds[c + 1] - 1, bounds[c] - 1, -1):
                for h in range(first, min(first + band, heads)):
                    key = ((h, c), lvl); order.append(key); walks[key] = list(range(lvl * ratio, QB))
    for key in order:
        for q in walks[key]: turnorder[(key[0], q)].append(key[1])
    return order, walks, turnorder

for name, heads, KB, QB, ratio, band in [("D256 S8192", 16, 128, 128, 1, 2), ("D128 S8192", 32, 64, 128, 2, 3),
                                         ("D128 S16384", 16, 128, 256, 2, 2)]:
    for chains in [1, 2, 3]:
        print(name, "chains", chains, round(simulate(*chains_case(heads, KB, QB, ratio, band, chains)), 3), flush=True)
