# The probe on the GPU: causal, NaN in V at the last key; only the last row may be NaN.
import numpy as np, subprocess, sys
r = np.random.default_rng(1)
for dt in ["float16", "float32"]:
    q, k, v, do = (r.standard_normal((1, 2, 200, 64)).astype(dt) for _ in range(4))
    v[0, 1, -1, 3] = np.nan
    for n, a in zip(["q", "k", "v", "do"], [q, k, v, do]): np.save(f"/tmp/{n}.npy", a)
    for dev in ["cpu", "cuda"]:
        cmd = [".gpu/flexattn", "run", "--device", dev, "--q", "/tmp/q.npy", "--k", "/tmp/k.npy", "--v", "/tmp/v.npy",
               "--out", f"/tmp/o-{dev}.npy", "--lse", f"/tmp/l-{dev}.npy", "--mask", "q >= kv", "--grad-out", "/tmp/do.npy",
               "--dq", f"/tmp/dq-{dev}.npy", "--dk", f"/tmp/dk-{dev}.npy", "--dv", f"/tmp/dv-{dev}.npy"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode: print(dt, dev, "failed:", p.stderr.strip()); continue
        o, l = np.load(f"/tmp/o-{dev}.npy"), np.load(f"/tmp/l-{dev}.npy")
        rows = np.isnan(o).any(-1)
        print(dt, dev, "NaN O rows (b,h,s):", [tuple(x) for x in np.argwhere(rows)], "NaN LSE:", int(np.isnan(l).sum()))
        for g in ["dq", "dk", "dv"]:
            a = np.load(f"/tmp/{g}-{dev}.npy"); print("   ", g, "NaN rows:", [tuple(x) for x in np.argwhere(np.isnan(a).any(-1))])
    a, b = np.load("/tmp/o-cpu.npy").astype(np.float64), np.load("/tmp/o-cuda.npy").astype(np.float64)
    ok = ~np.isnan(a).any(-1)
    print(dt, "cpu vs cuda on finite rows: max |diff|", np.abs(a[ok] - b[ok]).max(), "same NaN rows:", bool((np.isnan(a) == np.isnan(b)).all()))
