# List scheduling of the Hopper backward's CTAs (132 SMs, walks per key block, the band launch order): makespan over
# the ideal, per bench row; then other orders. Run: python3 notes/schedule-model/sched.py
import heapq, math
SM=132; L2=50*1024*1024
def rows():
    for D,S,B,H in [(64,2048,8,32),(64,8192,2,32),(64,16384,1,32),(128,2048,8,16),(128,8192,2,16),(128,16384,1,16),(256,8192,2,8)]:
        yield D,S,B*H
def params(D,S,heads):
    BK = 128 if D<=128 else 64
    QB = S//64; KB = S//BK
    turn = 8 if D<=64 else 2
    spacing = -(-turn*SM//QB)
    fitting = 4*L2//5//(S*8*D)
    band = max(1,min(spacing,fitting,heads))
    walk = lambda k: QB - k*(BK//64)
    return KB,QB,band,walk
def band_order(KB,heads,band):
    out=[]
    for first in range(0,heads,band):
        w=min(band,heads-first)
        for lvl in range(KB-1,-1,-1):
            for h in range(first,first+w): out.append((h,lvl))
    return out
def two_phase(KB,heads,band,L):
    out=[]
    for first in range(0,heads,band):
        w=min(band,heads-first)
        for lvl in range(KB-1,L-1,-1):
            for h in range(first,first+w): out.append((h,lvl))
    for lvl in range(L-1,-1,-1):
        for h in range(heads): out.append((h,lvl))
    return out
def makespan(order,walk,over):
    free=[0.0]*SM; heapq.heapify(free); end=0; tot=0
    for h,k in order:
        t=heapq.heappop(free); d=walk(k)+over; tot+=d; heapq.heappush(free,t+d); end=max(end,t+d)
    return end/(tot/SM)
for D,S,heads in rows():
    KB,QB,band,walk=params(D,S,heads)
    over=1.5
    base=makespan(band_order(KB,heads,band),walk,over)
    res=[]
    for L in [1,2,4,8,16,32]:
        if L<=KB: res.append((L,round(makespan(two_phase(KB,heads,band,L),walk,over),3), L*heads))
    best=min(res,key=lambda r:r[1])
    print(f"D={D} S={S} heads={heads} KB={KB} band={band}: band order {base:.3f}; two-phase {res}")
print("--- LPT (unconstrained) and timeline of idle")
for D,S,heads in rows():
    KB,QB,band,walk=params(D,S,heads)
    order=band_order(KB,heads,band)
    lpt=sorted(order,key=lambda hk:-walk(hk[1]))
    # reversed band order: levels ascending within band (lowest first)
    rev=[]
    for first in range(0,heads,band):
        w=min(band,heads-first)
        for lvl in range(KB):
            for h in range(first,first+w): rev.append((h,lvl))
    print(D,S,"LPT",round(makespan(lpt,walk,1.5),3),"lowest-first bands",round(makespan(rev,walk,1.5),3), "no overhead band",round(makespan(order,walk,0),3))
print("--- causal: makespan by band")
for D,S,heads in rows():
    KB,QB,band,walk=params(D,S,heads)
    r=[]
    for b in sorted(set([1,2,3,4,6,8,9,12,16,24,32,64,128,256,band])):
        if b<=heads: r.append((b,round(makespan(band_order(KB,heads,b),walk,1.5),3)))
    print(D,S,"cur",band,r)
