#!/usr/bin/env python3
"""Checks `flexattn run` against attention computed by NumPy in float64, forward and backward.

For each case it writes random inputs with NumPy's own .npy writer (format versions 1.0, 2.0 and 3.0), runs
`flexattn run`, reads O, LSE, dQ, dK, dV (and a bias table's gradient) back, and prints their relative errors
against the float64 reference. Then it hands over NumPy-written files flexattn must refuse (Fortran order, float64,
big-endian, truncated) and checks for one line on stderr, a nonzero exit and no output file. Last comes a
`N passed, M failed` line. Exit status 1 when any case failed.

With `--device cuda` every run goes to the GPU; Float16 inputs then allow more error, because the tensor-core
kernels round P and dS to Float16 (and O is Float16 before it is widened), as FlashAttention does.

usage: scripts/check-run-against-numpy.py [--flexattn PATH] [--seed N] [--device cpu|cuda|cuda:N]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def case(name, b, hq, hkv, sq, skv, d, dv, dtype="<f4", scale=None, mask=None, keep=None, score=None,
         tables=None, version=(1, 0)):
    """One problem. `mask`/`score` are flexattn text; `keep(b, h, q, kv)` and `score` as (text, f, df) mirror them."""
    return dict(name=name, shape=(b, hq, hkv, sq, skv, d, dv), dtype=dtype, scale=scale, mask=mask, keep=keep,
                score=score, tables=tables or {}, version=version)


def cases():
    doc = np.repeat(np.arange(5, dtype="<i4"), [7, 13, 1, 20, 9])
    bias = np.random.default_rng(7).standard_normal((3, 31, 31)).astype("<f4")
    return [
        case("f4 GQA odd shapes", 2, 4, 2, 37, 53, 40, 24),
        case("f4 causal GQA, scale 0.2", 1, 6, 2, 67, 67, 64, 64, scale=0.2, mask="q >= kv",
             keep=lambda b, h, q, kv: q >= kv),
        case("f2 causal MQA", 1, 4, 1, 29, 29, 80, 48, dtype="<f2", mask="q >= kv", keep=lambda b, h, q, kv: q >= kv),
        case("f2 one query, D=1", 3, 2, 2, 1, 130, 1, 3, dtype="<f2"),
        case("f4 causal bottom-right, Sq < Skv", 1, 2, 1, 19, 45, 32, 16, mask="q + kv_len - q_len >= kv",
             keep=lambda b, h, q, kv: q + 45 - 19 >= kv),
        case("f4 empty rows", 1, 3, 3, 9, 9, 8, 8, mask="kv > q + 3", keep=lambda b, h, q, kv: kv > q + 3),
        case("f4 document causal (<i4 table), header 2.0", 1, 4, 2, 50, 50, 24, 24,
             mask="doc[q] == doc[kv] && q >= kv", keep=lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv),
             tables={"doc": doc}, version=(2, 0)),
        case("f4 tanh soft-cap, causal, header 3.0", 2, 2, 1, 33, 33, 16, 16, mask="q >= kv",
             keep=lambda b, h, q, kv: q >= kv,
             score=("5.0 * tanh(score / 5.0)", lambda s, b, h, q, kv: 5 * np.tanh(s / 5),
                    lambda s, b, h, q, kv: 1 - np.tanh(s / 5) ** 2), version=(3, 0)),
        case("f4 bias table score mod + --dtable", 2, 3, 3, 31, 31, 16, 8,
             score=("score + bias[h, q, kv]", lambda s, b, h, q, kv: s + bias.astype(np.float64)[h, q, kv],
                    lambda s, b, h, q, kv: np.ones_like(s)), tables={"bias": bias}),
        case("f2 causal, several tiles", 1, 2, 2, 300, 257, 128, 64, dtype="<f2", mask="q >= kv",
             keep=lambda b, h, q, kv: q >= kv),
    ]


def reference(c, q, k, v, do):
    """O, LSE, dQ, dK, dV and dScore summed over the batch (the gradient of an additive [H, Sq, Skv] bias)."""
    b, hq, hkv, sq, skv, d, dv = c["shape"]
    scale = c["scale"] if c["scale"] is not None else 1 / np.sqrt(d)
    group = hq // hkv
    kk, vv = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    raw = scale * q @ kk.transpose(0, 1, 3, 2)
    grid = np.meshgrid(np.arange(b), np.arange(hq), np.arange(sq), np.arange(skv), indexing="ij")
    s, slope = raw, np.ones_like(raw)
    if c["score"] is not None:
        s, slope = c["score"][1](raw, *grid), c["score"][2](raw, *grid)
    keep = c["keep"](*grid) if c["keep"] is not None else np.ones_like(raw, dtype=bool)
    s = np.where(keep, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    empty = np.isneginf(m)
    e = np.where(keep, np.exp(s - np.where(empty, 0, m)), 0)
    total = e.sum(axis=-1, keepdims=True)
    p = np.where(empty, 0, e / np.where(empty, 1, total))
    lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, total)))[..., 0]
    o = p @ vv
    dp = do @ vv.transpose(0, 1, 3, 2)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    draw = ds * slope
    dq = scale * draw @ kk
    dk = (scale * draw.transpose(0, 1, 3, 2) @ q).reshape(b, hkv, group, skv, d).sum(axis=2)
    dvv = (p.transpose(0, 1, 3, 2) @ do).reshape(b, hkv, group, skv, dv).sum(axis=2)
    return o, lse, dq, dk, dvv, ds.sum(axis=0)


def relative_error(actual, expected):
    finite = np.isfinite(expected)
    if not np.array_equal(np.isfinite(actual), finite) or not np.array_equal(actual[~finite], expected[~finite]):
        return np.inf
    diff = np.linalg.norm((actual[finite] - expected[finite]).ravel())
    norm = np.linalg.norm(expected[finite].ravel())
    return diff / norm if norm > 0 else diff


def save(path, array, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def run_case(c, flexattn, device, rng, folder):
    b, hq, hkv, sq, skv, d, dv = c["shape"]
    arrays = {
        "q": rng.standard_normal((b, hq, sq, d)), "k": rng.standard_normal((b, hkv, skv, d)),
        "v": rng.standard_normal((b, hkv, skv, dv)), "do": rng.standard_normal((b, hq, sq, dv)),
    }
    arrays = {name: a.astype(c["dtype"]) for name, a in arrays.items()}
    for name, a in arrays.items():
        save(os.path.join(folder, name + ".npy"), a, c["version"])
    command = [flexattn, "run", "--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy", "--lse", "lse.npy",
               "--grad-out", "do.npy", "--dq", "dq.npy", "--dk", "dk.npy", "--dv", "dv.npy", "--device", device]
    if c["scale"] is not None:
        command += ["--scale", repr(c["scale"])]
    if c["mask"] is not None:
        command += ["--mask", c["mask"]]
    if c["score"] is not None:
        command += ["--score", c["score"][0]]
    for name, table in c["tables"].items():
        save(os.path.join(folder, name + ".npy"), table, c["version"])
        command += ["--table", f"{name}={name}.npy"]
    if "bias" in c["tables"]:
        command += ["--dtable", "bias=dbias.npy"]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip()

    inputs = [arrays[name].astype(np.float64) for name in ("q", "k", "v", "do")]
    o, lse, dq, dk, dvv, dbias = reference(c, *inputs)
    expected = {"O": ("o", o), "LSE": ("lse", lse), "dQ": ("dq", dq), "dK": ("dk", dk), "dV": ("dv", dvv)}
    if "bias" in c["tables"]:
        expected["dbias"] = ("dbias", dbias)
    errors = {}
    for label, (name, want) in expected.items():
        got = np.load(os.path.join(folder, name + ".npy"))
        if got.dtype != np.dtype("<f4") or got.shape != want.shape:
            return None, f"{name}.npy is {got.dtype} {got.shape}, expected <f4 {want.shape}"
        errors[label] = relative_error(got.astype(np.float64), want)
    return errors, None


def refusals():
    """(name, how to spoil a valid Q [1, 2, 3, 4] float32 array or its file) pairs."""
    def truncated(path, array):
        save(path, array, (1, 0))
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 1)
    return [
        ("Fortran order", lambda path, a: np.save(path, np.asfortranarray(a))),
        ("float64", lambda path, a: np.save(path, a.astype("<f8"))),
        ("big-endian", lambda path, a: np.save(path, a.astype(">f4"))),
        ("int32", lambda path, a: np.save(path, a.astype("<i4"))),
        ("rank 3", lambda path, a: np.save(path, a[0])),
        ("truncated data", truncated),
    ]


def run_refusal(spoil, flexattn, device, rng, folder):
    """None when flexattn refuses a spoiled Q cleanly, else what went wrong."""
    good = rng.standard_normal((1, 2, 3, 4)).astype("<f4")
    for name in ("k", "v"):
        np.save(os.path.join(folder, name + ".npy"), good)
    spoil(os.path.join(folder, "q.npy"), good)
    before = sorted(os.listdir(folder))
    result = subprocess.run([flexattn, "run", "--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy",
                             "--lse", "lse.npy", "--device", device], cwd=folder, capture_output=True, text=True)
    if result.returncode == 0:
        return "exit status 0"
    if result.stderr.count("\n") != 1 or not result.stderr.endswith("\n"):
        return f"stderr is not one line: {result.stderr!r}"
    if sorted(os.listdir(folder)) != before:
        return "files left behind"
    return None


def report(ok, name, detail):
    print(f"{'pass' if ok else 'FAIL'}  {name}: {detail}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flexattn", default=os.path.join(ROOT, ".build", "debug", "flexattn"))
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()
    flexattn = os.path.abspath(options.flexattn)
    if not os.access(flexattn, os.X_OK):
        sys.exit(f"no flexattn executable at {flexattn} (build it, or pass --flexattn PATH)")
    rng = np.random.default_rng(options.seed)
    passed = failed = 0
    for c in cases():
        # Inputs are rounded to the file dtype before the reference sees them, so only flexattn's Float32
        # arithmetic (and Float16 rounding inside its kernels for <f2 inputs) separates the two.
        limits = {"<f4": (2e-5, 1e-4), "<f2": (1e-4, 4e-4) if options.device == "cpu" else (2e-3, 1e-2)}[c["dtype"]]
        with tempfile.TemporaryDirectory() as folder:
            errors, failure = run_case(c, flexattn, options.device, rng, folder)
        if errors is not None:
            bad = [label for label, e in errors.items() if e > (limits[0] if label in ("O", "LSE") else limits[1])]
            failure = f"{', '.join(bad)} over limits {limits}" if bad else None
            detail = "  ".join(f"{label} {e:.1e}" for label, e in errors.items())
        else:
            detail = ""
        ok = report(failure is None, c["name"], detail if failure is None else f"{failure}  {detail}".rstrip())
        passed, failed = passed + ok, failed + (not ok)
    for name, spoil in refusals():
        with tempfile.TemporaryDirectory() as folder:
            failure = run_refusal(spoil, flexattn, options.device, rng, folder)
        ok = report(failure is None, f"refuses {name}", failure or "one line on stderr, no output file")
        passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
