#!/usr/bin/env python3
"""Measures PyTorch's host-side overhead per attention call, to set beside our own (target: at most 10 µs of host
time per prepared call over 10,000 calls of a tiny shape). Tiny bf16 shapes, B=1 H=1 S=128 D=64 and B=1 H=8 S=256
D=64, all on the current CUDA stream, no CUDA graphs: SDPA (default backend selection, FlashAttention, cuDNN; a
backend that raises is skipped with its reason) and torch.compile(flex_attention) with a causal block mask made once
by create_block_mask and with no mask, forward and forward+backward. Forward+backward calls set `.grad = None` on
q, k and v, run forward, then `out.backward(grad)`; the `.grad = None` cost is included in its figures.
After warm-up (compilation included), each case times 10,000 calls three times, in batches of 100 with a
synchronize between batches, and reports the medians of the three:
  host: perf_counter_ns around each batch's loop (no synchronize inside), summed, per call: the time to enqueue;
  gpu:  CUDA events recorded around each batch, summed, per call.
Batches keep the launch queue from filling: queuing 10,000 tiny calls in one loop would throttle the host to the
device's pace, and the loop would time whichever of the two is slower. `flexattn bench --device cuda --model`
measures our calls the same way.
Usage: python3 scripts/gpu_overhead.py
"""
import statistics
import time
from contextlib import nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

# Each shape, mask and requires_grad setting is a new compilation for torch.compile; past the default limit of 8 it
# silently falls back to eager execution, which would time something else. dynamic=False keeps the second shape a
# static specialization rather than a dynamic-shape recompilation of the first.
torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.cache_size_limit = 64
flex = torch.compile(flex_attention, dynamic=False)
SDPA = {"sdpa-default": None, "sdpa-flash": SDPBackend.FLASH_ATTENTION, "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION}
CALLS, BATCH, REPEATS, WARMUP = 10_000, 100, 3, 100


def time_loop(call):
    """Host and GPU microseconds per call over CALLS calls of `call()`, in batches of BATCH."""
    host_ns, gpu_ms = 0, 0.0
    for _ in range(CALLS // BATCH):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            call()
        host_ns += time.perf_counter_ns() - t0
        end.record()
        torch.cuda.synchronize()
        gpu_ms += start.elapsed_time(end)
    return host_ns / 1e3 / CALLS, gpu_ms * 1e3 / CALLS


def report(case, shape, call, context=nullcontext):
    """Warms `call` up, then prints the median over REPEATS of each metric; a case that raises is skipped."""
    label = f"torch {case} B={shape[0]} H={shape[1]} S={shape[2]} D={shape[3]}"
    try:
        with context():
            for _ in range(WARMUP):
                call()
            torch.cuda.synchronize()
            runs = [time_loop(call) for _ in range(REPEATS)]
    except Exception as error:  # a backend that cannot run this shape, or is missing from this build
        reason = str(error).strip().partition("\n")[0]
        print(f"{label}: skipped ({type(error).__name__}: {reason})")
        return
    host, gpu = (statistics.median(metric) for metric in zip(*runs))
    print(f"{label}: host {host:.2f} µs/call, gpu {gpu:.2f} µs/call")


def training(attend, inputs, grad):
    """A forward+backward call: clear the gradients, run forward, backpropagate `grad`."""
    def call():
        for x in inputs:
            x.grad = None
        attend(*inputs).backward(grad)
    return call


def causal(b, h, q, kv):
    return q >= kv


print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"{torch.cuda.get_device_name()}; fwd+bwd figures include setting .grad = None on q, k, v each call")
for shape in [(1, 1, 128, 64), (1, 8, 256, 64)]:
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    grad = torch.randn_like(q)
    mask = create_block_mask(causal, None, None, shape[2], shape[2])
    cases = [(name, F.scaled_dot_product_attention, partial(sdpa_kernel, backend) if backend else nullcontext)
             for name, backend in SDPA.items()]
    cases += [("flex-causal", lambda q, k, v: flex(q, k, v, block_mask=mask), nullcontext),
              ("flex-nomask", flex, nullcontext)]
    for name, attend, context in cases:
        report(f"{name} fwd", shape, partial(attend, q, k, v), context)
    for name, attend, context in cases:
        report(f"{name} fwd+bwd", shape, training(attend, leaves, grad), context)
