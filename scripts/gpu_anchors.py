#!/usr/bin/env python3
"""Times PyTorch's attention on the GPU on the rows `flexattn bench --device cuda` times, for ratios in
BENCHMARKS.md: SDPA with its FlashAttention-2 and cuDNN backends and torch.compile(flex_attention), bf16,
forward and forward+backward, median of CUDA-event timings after warm-up. TFLOP/s count 4·B·H·D per kept score
(3.5 times that for forward+backward), as ours do.
Standard rows follow the FlashAttention papers (H·D = 2048, B·S = 16384); the patterns use B=2, H=16, S=8192,
D=128.  Usage: python3 scripts/gpu_anchors.py
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

# Every shape and mod is a new compilation for torch.compile; past the default limit of 8 it silently falls back
# to eager execution, which would time something else.
torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.cache_size_limit = 64
flex = torch.compile(flex_attention)
SDPA = {"sdpa-flash": SDPBackend.FLASH_ATTENTION, "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION}


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


def report(name, label, b, h, s, d, kept, attend, inputs):
    """Times `attend()` forward, then forward+backward with a fixed upstream gradient; a backend that refuses the
    shape (cuDNN or Triton at D=256, say) gets a line saying why instead of a time."""
    grad = torch.randn_like(inputs[0])

    def train():
        for x in inputs:
            x.grad = None
        attend().backward(grad)

    try:
        ms, train_ms = median_ms(attend), median_ms(train)
    except Exception as error:
        reason = (str(error).splitlines() or [""])[0][:120]
        print(f"{name:11s} {label:22s} B={b} H={h} S={s} D={d}: not run ({type(error).__name__}: {reason})")
        return
    flops = 4 * b * h * d * kept
    print(f"{name:11s} {label:22s} B={b} H={h} S={s} D={d}: {ms:.3f} ms {flops / ms / 1e9:.1f} TFLOP/s, "
          f"fwd+bwd {train_ms:.3f} ms {3.5 * flops / train_ms / 1e9:.1f} TFLOP/s")


def causal(b, h, q, kv):
    return q >= kv


for s, d in [(2048, 64), (8192, 64), (16384, 64), (2048, 128), (8192, 128), (16384, 128), (8192, 256)]:
    b, h = 16384 // s, 2048 // d
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    for is_causal in (False, True):
        label, kept = ("causal", s * s / 2) if is_causal else ("dense", s * s)
        for name, backend in SDPA.items():
            with sdpa_kernel(backend):
                report(name, label, b, h, s, d, kept,
                       lambda: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal), (q, k, v))
        mask = create_block_mask(causal, None, None, s, s) if is_causal else None
        report("flex", label, b, h, s, d, kept, lambda: flex(q, k, v, block_mask=mask), (q, k, v))

b, h, s, d = 2, 16, 8192, 128
q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
window, documents = 1024, 16
doc = torch.arange(s, device="cuda") // (s // documents)
slopes = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], device="cuda")
patterns = [
    ("sliding window 1024", lambda b, h, q, kv: (q >= kv) & (q - kv < window), None,
     window * (window + 1) / 2 + (s - window) * window),
    ("16 documents, causal", lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv), None,
     documents * (s // documents) * (s // documents + 1) / 2),
    ("tanh soft-cap 30", None, lambda score, b, h, q, kv: 30 * torch.tanh(score / 30), s * s),
    ("ALiBi, causal", causal, lambda score, b, h, q, kv: score + slopes[h] * (kv - q), s * (s + 1) / 2),
]
for label, mask_mod, score_mod, kept in patterns:
    mask = create_block_mask(mask_mod, None, None, s, s) if mask_mod else None
    report("flex", label, b, h, s, d, kept, lambda: flex(q, k, v, score_mod=score_mod, block_mask=mask), (q, k, v))
