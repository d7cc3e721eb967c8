#!/usr/bin/env python3
"""Times PyTorch's decoding attention on the rows `flexattn bench --decode --device cuda` times, for the ratios in
BENCHMARKS.md: bf16, Hq=32, Hkv=8, D=128, one new query per sequence (Sq=1), every sequence holding the whole
context, B in {1, 8, 64} x context in {1k, 8k, 32k, 128k} (or --contexts), and at B=8, 32k a sliding window of 4096
and soft-capping 30.

  sdpa-flash / sdpa-efficient / sdpa-cudnn: F.scaled_dot_product_attention(enable_gqa=True) on a contiguous cache,
      each backend that runs (one that raises is reported with its reason);
  flex: torch.compile(flex_attention) on a contiguous cache, which takes the FlexDecoding path for short queries
      (the window as a block mask, soft-capping as a score mod);
  flex-paged-16 / flex-paged-64: torch.nn.attention.experimental._paged_attention.PagedAttention (pages handed out
      in a shuffled order, as ours), flex_attention over the physical cache with the converted block mask.

Each case is timed as ours is: single calls queued back to back, each after a read of 512 MiB that evicts the cache
from L2 (a read leaves no dirty lines to write back during the call), CUDA events around the call alone, median of 30 after a warm-up (compilation included there). GB/s count
the K and V bytes the step must read (the window's tokens only for the window).
Usage: python3 scripts/gpu_decode_anchors.py [--contexts 1024 8192 ...]
"""
import argparse
import random

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.experimental._paged_attention import PagedAttention
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

# Each shape and mod is a new compilation; past the default limit torch.compile silently falls back to eager.
torch._dynamo.config.recompile_limit = 256
torch._dynamo.config.cache_size_limit = 256
flex = torch.compile(flex_attention, dynamic=False)
HQ, HKV, D, PEAK = 32, 8, 128, 3350.0
SDPA = {"sdpa-flash": SDPBackend.FLASH_ATTENTION, "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
        "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION}
evict = torch.ones(128 << 20, dtype=torch.int32, device="cuda")  # 512 MiB


def median_us(call, iterations=30):
    call()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iterations)]
    for i, (start, end) in enumerate(events):
        torch.sum(evict, dtype=torch.int32)
        start.record()
        call()
        end.record()
    torch.cuda.synchronize()
    return 1000 * sorted(start.elapsed_time(end) for start, end in events)[iterations // 2]


def report(name, b, context, label, tokens, call):
    prefix = f"{name:15s} B={b:<3d} context={context:<7d} {label:12s}"
    try:
        us = median_us(call)
    except Exception as error:  # a backend that does not take the case
        print(f"{prefix} not run: {type(error).__name__}: {str(error).splitlines()[0][:120]}", flush=True)
        torch.cuda.empty_cache()
        return
    gbps = b * HKV * tokens * 2 * D * 2 / (us * 1e-6) / 1e9
    print(f"{prefix} {us:10.1f} us {gbps:8.0f} GB/s {100 * gbps / PEAK:6.1f} %", flush=True)


def window_mask(context, size):
    # The query sits at position context - 1.
    return lambda b, h, q, kv: (q + context - 1 >= kv) & (q + context - 1 - kv < size)


def soft_cap(score, b, h, q, kv):
    return 30 * torch.tanh(score / 30)


def contiguous_rows(b, context):
    q = torch.rand(b, HQ, 1, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    k = torch.rand(b, HKV, context, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    v = torch.rand(b, HKV, context, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    for name, backend in SDPA.items():
        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        report(name, b, context, "contiguous", context, sdpa)
    report("flex", b, context, "contiguous", context, lambda: flex(q, k, v, enable_gqa=True))
    if b == 8 and context == 32768:
        mask = create_block_mask(window_mask(context, 4096), None, None, 1, context)
        report("flex", b, context, "window 4096", 4096, lambda: flex(q, k, v, block_mask=mask, enable_gqa=True))
        report("flex", b, context, "soft-cap 30", context, lambda: flex(q, k, v, score_mod=soft_cap, enable_gqa=True))
    del q, k, v
    torch.cuda.empty_cache()


def paged_rows(b, context, page_size):
    pages = b * context // page_size
    paged = PagedAttention(pages, page_size, b)
    paged.empty_pages = list(range(pages))
    random.Random(7).shuffle(paged.empty_pages)  # each sequence's pages spread over the pool
    for i in range(b):
        paged.reserve(torch.tensor(i, device="cuda"), torch.tensor(context, device="cuda"))
    k_cache = torch.rand(1, HKV, pages * page_size, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    v_cache = torch.rand(1, HKV, pages * page_size, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    q = torch.rand(b, HQ, 1, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
    logical = create_block_mask(lambda b, h, q, kv: kv >= 0, b, None, 1, context, BLOCK_SIZE=(128, page_size))
    mask = paged.convert_logical_block_mask(logical)
    report(f"flex-paged-{page_size}", b, context, f"paged {page_size}", context,
           lambda: flex(q, k_cache, v_cache, block_mask=mask, enable_gqa=True))
    del paged, k_cache, v_cache, q, logical, mask
    torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192, 32768, 131072])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    options = parser.parse_args()
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, bf16 Hq={HQ} Hkv={HKV} D={D} Sq=1", flush=True)
    for b in options.batches:
        for context in options.contexts:
            need = b * HKV * context * 2 * D * 2
            if need > torch.cuda.mem_get_info()[0] - (4 << 30):
                print(f"B={b} context={context}: skipped, the cache needs {need >> 30} GiB", flush=True)
                continue
            for rows, extra in [(contiguous_rows, ()), (paged_rows, (16,)), (paged_rows, (64,))]:
                try:
                    rows(b, context, *extra)
                except Exception as error:  # a setup that fails (memory, an API change) skips its rows only
                    print(f"B={b} context={context} {rows.__name__}{extra}: not run: {type(error).__name__}: "
                          f"{str(error).splitlines()[0][:120]}", flush=True)
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
