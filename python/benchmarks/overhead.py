"""Host overhead of a repeated flex_attention call: microseconds per call on tiny shapes (compute negligible).

    FLEXATTENTION_LIBRARY=/path/to/libflexattention.so PYTHONPATH=python python3 python/benchmarks/overhead.py

Shapes are those of one decode step with grouped-query attention (q [1, 16, 1, 64], k/v [1, 4, 64, 64]), so what
is measured is the Python wrapper plus the library call. The library's ``fa_attention_forward`` and
``fa_attention_backward`` are timed around their ctypes calls ("in C": the C call alone, its CPU compute
included), so "Python" (total minus in C) is the wrapper's own host time, with the deleters of the outputs the
previous call dropped and, in the autograd cases, torch's autograd machinery: the "torch's own share" rows time an
autograd.Function with the same inputs, saved tensors and outputs but no library call, what torch charges any
such node. Times are the calling thread's CPU time (the library's worker threads, if its CPU code uses any, are
not counted; neither are other processes that take the cores). Each case runs in rounds after a warm-up; the
round with the smallest Python share is reported. The timing wrapper adds about a microsecond per C call.

To compare with another version of the package, give its parent folder; both are timed round by round in turn,
so that both see the same machine:

    git archive <commit> python/flexattention_swift | tar -x -C /tmp/baseline
    ... overhead.py --baseline /tmp/baseline/python
"""

import argparse
import contextlib
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flexattention_swift  # noqa: E402

try:
    import torch
except ImportError:  # the NumPy cases still run
    torch = None

# The calling thread's CPU time: what a host-bound model pays, and blind to other processes taking the cores.
CLOCK = time.thread_time

BATCH, QUERY_HEADS, KV_HEADS, QUERY_LENGTH, KV_LENGTH, HEAD_DIM = 1, 16, 4, 1, 64, 64


class LibraryTimer:
    """Replaces a package's library attention calls with ctypes-timed ones, to split a case's time into C and
    Python."""

    TIMED = ("fa_attention_forward", "fa_attention_backward")

    def __init__(self, package):
        self.seconds = 0.0
        library = package._lib.lib()
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


def load_baseline(folder):
    """The package found in ``folder`` (another version), imported as ``flexattention_swift_baseline``."""
    name = "flexattention_swift_baseline"
    init = os.path.join(folder, "flexattention_swift", "__init__.py")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Timing:
    """One version's function for a case and the best round seen: (total, in C) seconds per call."""

    def __init__(self, function, timer, context):
        self.function = function
        self.timer = timer
        self.context = context
        self.best = None

    def round(self, calls):
        with self.context():
            self.timer.seconds = 0.0
            start = CLOCK()
            for _ in range(calls):
                self.function()
            total, in_c = (CLOCK() - start) / calls, self.timer.seconds / calls
        if self.best is None or total - in_c < self.best[0] - self.best[1]:
            self.best = (total, in_c)

    def microseconds(self):
        total, in_c = self.best
        return total * 1e6, in_c * 1e6, (total - in_c) * 1e6


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


if torch is not None:
    class AutogradFloor(torch.autograd.Function):
        """What torch itself charges for an autograd node like flex_attention's: the same inputs, saved tensors,
        outputs and gradients, made with torch.empty instead of a library call."""

        @staticmethod
        def forward(ctx, q, k, v):
            out, lse = torch.empty(q.shape[:3] + v.shape[3:]), torch.empty(q.shape[:3])
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_out, grad_lse):
            q, k, v, out, lse = ctx.saved_tensors
            grad_out = grad_out.contiguous()
            return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def cases(fa):
    """(name, function) for each benchmark case, calling package ``fa``."""
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
        yield "torch's own share: forward", lambda: AutogradFloor.apply(q, k, v)
        yield "torch's own share: forward + backward", lambda: AutogradFloor.apply(q, k, v)[0].sum().backward()


def context_of(name):
    """torch.no_grad for the torch inference cases, else nothing."""
    return torch.no_grad if name.startswith("torch: ") else contextlib.nullcontext


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=60, help="rounds per case (the least disturbed is reported)")
    parser.add_argument("--baseline", help="folder holding another version's flexattention_swift, timed in turn")
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(1)
    packages = [("this", flexattention_swift)]
    if args.baseline:
        packages.insert(0, ("baseline", load_baseline(args.baseline)))
    timers = [LibraryTimer(package) for _, package in packages]
    case_lists = [list(cases(package)) for _, package in packages]
    rows = []
    for index, (name, _) in enumerate(case_lists[0]):
        label = name + (" (no_grad)" if name.startswith("torch: ") else "")
        timings = [Timing(functions[index][1], timer, context_of(name))
                   for functions, timer in zip(case_lists, timers)]
        for timing in timings:
            timing.round(max(args.calls // 10, 10))  # warm-up
        for i in range(args.rounds):
            for timing in (timings if i % 2 == 0 else reversed(timings)):
                timing.round(args.calls)
        rows.append((label, [timing.microseconds() for timing in timings]))
    width = max(len(label) for label, _ in rows)
    header = "".join(f"  {version + ': total':>16}  {'in C':>6}  {'Python':>6}" for version, _ in packages)
    print(f"{'case':<{width}}{header}   (us per call)")
    for label, results in rows:
        print(f"{label:<{width}}" + "".join(f"  {t:16.1f}  {c:6.1f}  {p:6.1f}" for t, c, p in results))
    if args.baseline:
        print("\nPython share, baseline / this:")
        for label, (base, this) in rows:
            print(f"{label:<{width}}  {base[2] / this[2]:5.2f}x")


if __name__ == "__main__":
    main()
