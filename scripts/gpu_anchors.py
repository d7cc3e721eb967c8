#!/usr/bin/env python3
"""Times PyTorch's attention on the GPU on the shapes `flexattn cuda-bench` times, for ratios in BENCHMARKS.md.

SDPA with its FlashAttention-2 and cuDNN backends, bf16, forward, median of CUDA-event timings after warm-up.
Shapes follow the FlashAttention papers: hidden H·D = 2048, B·S = 16384.  Usage: python3 scripts/gpu_anchors.py
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(8, 16, 2048, 128), (2, 16, 8192, 128), (1, 16, 16384, 128), (2, 32, 8192, 64)]
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def median_ms(run, repeats=20):
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


for b, h, s, d in SHAPES:
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    for causal in (False, True):
        flop = 4 * b * h * s * s * d * (0.5 if causal else 1)
        for name, backend in BACKENDS.items():
            with sdpa_kernel(backend):
                ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            print(f"sdpa-{name:5s} B={b} H={h} S={s} D={d} causal={causal}: {ms:.3f} ms {flop / ms / 1e9:.1f} TFLOP/s")
