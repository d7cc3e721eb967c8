"""Host overhead of a repeated flex_attention call: microseconds per call on tiny shapes (compute negligible).

    FLEXATTENTION_LIBRARY=/path/to/libflexattention.so PYTHONPATH=python python3 python/benchmarks/overhead.py

Shapes are those of one decode step with grouped-query attention (q [1, 16, 1, 64], k/v [1, 4, 64, 64]), so what
is measured is the Python wrapper plus the library call. The library's ``fa_attention_forward`` and
``fa_attention_backward`` are timed around their ctypes calls ("in C": the C call alone, its CPU compute
included), so "Python" (total minus in C) is the wrapper's own host time, with torch's autograd machinery in the
autograd cases. Times are the calling thread's CPU time (the library's worker threads, if its CPU code uses
any, are not counted; neither are other processes that take the cores). Each case runs in rounds after a
warm-up; the round with the smallest Python share is reported. The timing wrapper adds about a microsecond per
C call.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flexattention_swift as fa  # noqa: E402
from flexattention_swift import _lib  # noqa: E402

try:
    import torch
except ImportError:  # the NumPy cases still run
    torch = None

# The calling thread's CPU time: what a host-bound model pays, and blind to other processes taking the cores.
CLOCK = time.thread_time

BATCH, QUERY_HEADS, KV_HEADS, QUERY_LENGTH, KV_LENGTH, HEAD_DIM = 1, 16, 4, 1, 64, 64


class LibraryTimer:
    """Replaces the library's attention calls with ctypes-timed ones, so a case's time splits into C and Python."""

    TIMED = ("fa_attention_forward", "fa_attention_backward")

    def __init__(self):
        self.seconds = 0.0
        library = _lib.lib()
        for name in self.TIMED:
            setattr(library, name, self._timed(getattr(library, name)))

    def _timed(self, function):
        def timed(*args):
            start = CLOCK()
            try:
                return function(*args)
            finally:
                self.seconds += CLOCK() - start

        return timed


def measure(function, calls, rounds, timer):
    """(total, in the library) microseconds per call, from the round whose Python share was the smallest."""
    for _ in range(max(calls // 10, 10)):
        function()
    best = None
    for _ in range(rounds):
        timer.seconds = 0.0
        start = CLOCK()
        for _ in range(calls):
            function()
        total, in_c = (CLOCK() - start) / calls, timer.seconds / calls
        if best is None or total - in_c < best[0] - best[1]:
            best = (total, in_c)
    return best[0] * 1e6, best[1] * 1e6


def inputs(module):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape in (
        (BATCH, QUERY_HEADS, QUERY_LENGTH, HEAD_DIM),
        (BATCH, KV_HEADS, KV_LENGTH, HEAD_DIM),
        (BATCH, KV_HEADS, KV_LENGTH, HEAD_DIM))]
    bias = rng.standard_normal(QUERY_HEADS).astype(np.float32)
    if module == "numpy":
        return arrays, bias
    return [torch.from_numpy(a) for a in arrays], torch.from_numpy(bias)


def cases():
    """(name, function) for each benchmark case."""
    mask = fa.create_block_mask(lambda b, h, q, kv: kv <= q + KV_LENGTH - 1, None, None, QUERY_LENGTH, KV_LENGTH)
    modules = ["numpy"] + (["torch"] if torch is not None else [])
    for module in modules:
        (q, k, v), bias = inputs(module)

        def score_mod(score, b, h, q_idx, kv_idx, bias=bias):
            return score + bias[h]

        yield f"{module}: plain", lambda q=q, k=k, v=v: fa.flex_attention(q, k, v, enable_gqa=True)
        yield f"{module}: block mask", lambda q=q, k=k, v=v: fa.flex_attention(q, k, v, block_mask=mask,
                                                                                enable_gqa=True)
        yield f"{module}: score mod (float table)", lambda q=q, k=k, v=v: fa.flex_attention(
            q, k, v, score_mod=score_mod, block_mask=mask, enable_gqa=True)
    if torch is not None:
        (q, k, v), bias = inputs("torch")
        q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
        yield "torch autograd: forward", lambda: fa.flex_attention(q, k, v, block_mask=mask, enable_gqa=True)

        def forward_backward():
            fa.flex_attention(q, k, v, block_mask=mask, enable_gqa=True).sum().backward()

        yield "torch autograd: forward + backward", forward_backward


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per case (the least disturbed is reported)")
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(1)
    timer = LibraryTimer()
    rows = []
    for name, function in cases():
        if name.startswith("torch: "):
            with torch.no_grad():
                rows.append((name + " (no_grad)", *measure(function, args.calls, args.rounds, timer)))
        else:
            rows.append((name, *measure(function, args.calls, args.rounds, timer)))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'case':<{width}}  {'total':>8}  {'in C':>8}  {'Python':>8}   (us per call)")
    for name, total, in_c in rows:
        print(f"{name:<{width}}  {total:8.1f}  {in_c:8.1f}  {total - in_c:8.1f}")


if __name__ == "__main__":
    main()
