# Event model of the Hopper backward with dQ turns: CTAs in launch order on 132 SMs, a step per time unit, each
# addition waiting for the previous key block in the query block's turn order (0.6 of a step each), two steps of
# slack. Compares highest-first (main) with lowest-first launch orders. Run: python3 notes/schedule-model/turns.py
# Event simulation: CTAs dispatched in launch order to 132 SMs; a CTA walks its query blocks (1 time unit per step,
# plus `over` at start); step s's dQ add may start once the step is computed and the previous key block in the
# query block's turn order has added; an add takes `turn`; compute of step s may not start before the add of step
# s - lag has completed (tiles/stages).
import heapq
from collections import defaultdict
SM=132
def simulate(order, walks, turnorder, turn=0.6, over=1.5, lag=2):
    # walks[(h,k)] = list of q ; turnorder[(h,q)] = list of k in turn order
    nxt = defaultdict(int)
    added_time = {}  # (h,q) -> time the last add completed
    # Simulate each CTA sequentially is impossible due to dependencies; use global event loop on step granularity.
    launch=list(order); li=0
    running={}  # sm -> state
    events=[]  # (time, seq, sm)
    seq=0
    end=0
    rank={}
    for (h,q),ks in turnorder.items():
        for i,k in enumerate(ks): rank[(h,k,q)]=i
    def start(sm,t):
        nonlocal li,seq
        if li>=len(launch): return
        h,k=launch[li]; li+=1
        st={'h':h,'k':k,'qs':walks[(h,k)],'s':0,'t':t+over,'adds':[]}
        running[sm]=st
        advance(sm)
    def advance(sm):
        # compute next step if allowed, else wait
        nonlocal seq,end
        st=running[sm]
        s=st['s']
        if s>=len(st['qs']):
            # wait for all adds
            if None in st['adds']: return
            tdone=max([st['t']]+st['adds'])
            end=max(end,tdone); del running[sm]
            heapq.heappush(events,(tdone,seq,('free',sm))); seq+=1
            return
        if s>=lag:
            a=st['adds'][s-lag]
            if a is None: return  # blocked until add done
            st['t']=max(st['t'],a)
        st['t']+=1.0
        st['adds'].append(None)
        q=st['qs'][s]; st['s']+=1
        heapq.heappush(events,(st['t'],seq,('computed',sm,s,q))); seq+=1
    pending=defaultdict(dict) # (h,q) -> {rank: (sm,s,time)}
    def try_add(h,q,t):
        nonlocal seq
        key=(h,q)
        r=nxt[key]
        if r in pending[key]:
            sm,s,tc=pending[key].pop(r)
            t0=max(tc,added_time.get(key,0.0))
            heapq.heappush(events,(t0+turn,seq,('added',sm,s,h,q))); seq+=1
    for i in range(SM): start(i,0.0)
    while events:
        t,_,ev=heapq.heappop(events)
        if ev[0]=='free': start(ev[1],t)
        elif ev[0]=='computed':
            _,sm,s,q=ev; st=running[sm]; h=st['h']
            pending[(h,q)][rank[(h,st['k'],q)]]=(sm,s,t)
            try_add(h,q,t)
            advance(sm)
        else:
            _,sm,s,h,q=ev
            added_time[(h,q)]=t; nxt[(h,q)]+=1
            st=running[sm]; st['adds'][s]=t
            advance(sm)
            try_add(h,q,t)
    work=sum(len(w)+over for w in walks.values())
    return end/(work/SM)
def case(heads,KB,QB,ratio,band,lowest_first,ascending=True):
    walks={}; turnorder=defaultdict(list)
    order=[]
    for first in range(0,heads,band):
        w=min(band,heads-first)
        lv=range(KB) if lowest_first else range(KB-1,-1,-1)
        for lvl in lv:
            for h in range(first,first+w): order.append((h,lvl))
    for h in range(heads):
        for k in range(KB):
            qs=list(range(k*ratio,QB))
            walks[(h,k)]=qs if ascending else qs[::-1]
    for (h,k) in order:
        for q in walks[(h,k)]: turnorder[(h,q)].append(k)
    return order,walks,turnorder
for name,heads,KB,QB,ratio,bands in [("D256 S8192",16,128,128,1,[2,4,8,16]),("D128 S8192",32,64,128,2,[3,8,16,32]),("D128 S2048",128,16,32,2,[9,32,128]),("D128 S16384",16,128,256,2,[2,8,16])]:
    for turn in [0.6]:
        for band in bands:
            for lf in [False,True]:
                r=simulate(*case(heads,KB,QB,ratio,band,lf),turn=turn)
                print(name,"turn",turn,"band",band,"lowest-first" if lf else "highest-first",round(r,3),flush=True)
