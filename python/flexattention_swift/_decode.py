"""flash_attn_with_kvcache: FlashAttention's decode entry point over ``fa_decode``."""

import ctypes
import math

import numpy as np

from . import _dlpack as D
from . import _lib
from . import _expr as E
from . import _trace as T
from ._attention import _backend, _stream_of, _stream_pointer, check_inputs
from ._modstruct import ModStruct
from .errors import InvalidArgumentError, TraceError


def _permute(x, order):
    return x.permute(*order) if D.is_torch_tensor(x) else np.transpose(x, order)


def _lengths(cache_seqlens, batch, as_torch, capacity):
    """cache_seqlens as an int32 tensor/array of [B] (an int fills it; None means the whole cache)."""
    if cache_seqlens is None:
        cache_seqlens = capacity
    if isinstance(cache_seqlens, (int, np.integer)):
        if as_torch:
            import torch

            return torch.full((batch,), int(cache_seqlens), dtype=torch.int32)
        return np.full((batch,), int(cache_seqlens), dtype=np.int32)
    if as_torch and not D.is_torch_tensor(cache_seqlens):
        import torch

        cache_seqlens = torch.as_tensor(np.asarray(cache_seqlens))
    if not as_torch:
        cache_seqlens = np.asarray(cache_seqlens)
    if tuple(cache_seqlens.shape) != (batch,):
        raise InvalidArgumentError(f"cache_seqlens must have shape ({batch},), got {tuple(cache_seqlens.shape)}")
    if D.dtype_name(cache_seqlens) not in ("int32", "int64"):
        raise InvalidArgumentError(f"cache_seqlens must be int32 or int64, got {D.dtype_name(cache_seqlens)}")
    return cache_seqlens


def _compose_mods(score_mod, mask_mod, mod_args, softcap, window, causal, alibi_slopes):
    """The decode score mod and mask (TracedMods or None) with softcap, ALiBi and the window folded in."""
    context = T.TraceContext(reserved=tuple(mod_args or ()))
    extra_params = []

    def param(name, kind, value):
        node = context.parameter(value, name)
        extra_params.append(node.payload)
        return node

    # Score: softcap first, then ALiBi, then the user's mod (FlashAttention caps the raw scaled score).
    score_text = None
    score_expr = None
    base = E.variable("score")
    if softcap:
        cap = param("softcap", E.FLOAT, float(softcap))
        base = E.binary("*", cap, E.unary("tanh", E.binary("/", base, cap)))
    if alibi_slopes is not None:
        slopes = context.table_value(alibi_slopes, "alibi_slopes")
        if slopes.ndim == 1:
            slope = slopes[E.variable("h")]
        else:
            slope = slopes[E.variable("b"), E.variable("h")]
        distance = E.to_float(E.unary("abs", E.binary("-", E.variable("q"), E.variable("kv"))))
        base = E.binary("-", base, E.binary("*", slope, distance))
    if score_mod is None:
        if base.op != "var":
            score_expr = base
    elif isinstance(score_mod, str):
        score_text = score_mod if base.op == "var" else T.substitute_score(score_mod, E.print_text(base))
    else:
        score_expr = T.trace_expr(score_mod, "score_mod", context, score=base if base.op != "var" else None)

    # Mask: the user's mask and the window (left: q - kv <= left; right: kv - q <= right, unless causal).
    left, right = (int(window[0]), int(window[1])) if window is not None else (-1, -1)
    window_expr = None
    q, kv = E.variable("q"), E.variable("kv")
    if left >= 0:
        window_expr = E.binary("<=", E.binary("-", q, kv), param("window_left", E.INT, left))
    if right >= 0 and not causal:
        term = E.binary("<=", E.binary("-", kv, q), param("window_right", E.INT, right))
        window_expr = term if window_expr is None else E.binary("&&", window_expr, term)
    mask_text = None
    mask_expr = None
    if mask_mod is None:
        mask_expr = window_expr
    elif isinstance(mask_mod, str):
        mask_text = mask_mod
        if window_expr is not None:
            bindings, formula = T.split_bindings(mask_mod)
            mask_text = f"{bindings}({formula}) && ({E.print_text(window_expr)})"
    else:
        mask_expr = T.trace_expr(mask_mod, "mask_mod", context)
        if window_expr is not None:
            mask_expr = E.binary("&&", mask_expr, window_expr)

    def build(expr, text):
        if expr is not None:
            return T.finish(expr)
        if text is not None:
            mod = T.from_text(text, mod_args, T.TraceContext())
            used = T.text_identifiers(text)
            mod.params.extend(p for p in extra_params if p.name in used)
            mod.tables.extend(s for s in context.by_object.values() if s.name in used)
            return mod
        return None

    return build(score_expr, score_text), build(mask_expr, mask_text)


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, cache_seqlens=None, block_table=None,
                            softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                            return_softmax_lse=False, score_mod=None, mask_mod=None, *, alibi_slopes=None,
                            mod_args=None, rotary_cos=None, rotary_sin=None, cache_batch_idx=None,
                            cache_leftpad=None, num_splits=0, rotary_interleaved=True):
    """Attention of new queries against a KV cache, shaped like FlashAttention's ``flash_attn_with_kvcache``.

    Args:
        q: ``[B, Sq, Hq, D]`` (BSHD).
        k_cache, v_cache: ``[B, S_cache, Hkv, D]``, or paged ``[num_blocks, page_block_size, Hkv, D]`` with
            ``block_table``.
        k, v: optional ``[B, Sn, Hkv, D]`` written into the cache at ``cache_seqlens`` (in place) before
            attending; ``cache_seqlens`` itself is not modified.
        cache_seqlens: int, or int32/int64 ``[B]``: tokens in each sequence's cache before the append (None:
            the whole contiguous cache). CPU tensors keep CUDA calls asynchronous (the library reads lengths on
            the host; a CUDA tensor is copied with a synchronising copy).
        block_table: int32 ``[B, max_blocks]`` page indices of a paged cache.
        softmax_scale: None means ``1 / sqrt(D)``.
        causal: query ``i`` sees keys up to its own position (``cache_seqlens + Sn - Sq + i``).
        window_size: ``(left, right)``; -1 is unbounded. Becomes the mask ``q - kv <= left && kv - q <= right``.
        softcap: when > 0, scores become ``softcap * tanh(score / softcap)`` (before ``score_mod``).
        return_softmax_lse: also return the log-sum-exp, float32 ``[B, Hq, Sq]``.
        score_mod, mask_mod: extra mods (callables traced as for :func:`flex_attention`, or strings); they see
            absolute positions ``q`` and ``kv`` and ``q_len = kv_len =`` the sequence's length.
        alibi_slopes: float32 ``[Hq]`` or ``[B, Hq]``: adds ``-slope * |q - kv|`` as FlashAttention does.
        mod_args: tables and parameters of string mods, by name.
        rotary_cos, rotary_sin, cache_batch_idx, cache_leftpad: not supported (must be None).

    Returns:
        ``out`` ``[B, Sq, Hq, Dv]`` (contiguous), or ``(out, softmax_lse)``.
    """
    for name, given in (("rotary_cos", rotary_cos), ("rotary_sin", rotary_sin),
                        ("cache_batch_idx", cache_batch_idx), ("cache_leftpad", cache_leftpad)):
        if given is not None:
            raise InvalidArgumentError(f"flash_attn_with_kvcache: {name} is not supported")
    if (k is None) != (v is None):
        raise InvalidArgumentError("pass both k and v, or neither")
    tensors = [q, k_cache, v_cache] + ([k, v] if k is not None else [])
    names = ["q", "k_cache", "v_cache"] + (["k", "v"] if k is not None else [])
    as_torch = _backend(tensors, names)
    check_inputs(tensors, names, as_torch)
    batch, sq, hq, d = (int(n) for n in q.shape)
    paged = block_table is not None
    if paged:
        if cache_seqlens is None:
            raise InvalidArgumentError("a paged cache (block_table) needs cache_seqlens")
        if tuple(block_table.shape)[:1] != (batch,) or len(block_table.shape) != 2:
            raise InvalidArgumentError(f"block_table must be [B={batch}, max_blocks], got "
                                       f"{tuple(block_table.shape)}")
        if D.dtype_name(block_table) not in ("int32", "int64"):
            raise InvalidArgumentError(f"block_table must be int32, got {D.dtype_name(block_table)}")
        if as_torch != D.is_torch_tensor(block_table):
            raise InvalidArgumentError("block_table must be of the same kind (torch or NumPy) as q")
    elif int(k_cache.shape[0]) != batch:
        raise InvalidArgumentError(f"k_cache has batch {int(k_cache.shape[0])}, q has {batch}")
    if tuple(k_cache.shape[:3]) != tuple(v_cache.shape[:3]):
        raise InvalidArgumentError(f"k_cache {tuple(k_cache.shape)} and v_cache {tuple(v_cache.shape)} differ")
    hkv = int(k_cache.shape[2])
    if int(k_cache.shape[3]) != d:
        raise InvalidArgumentError(f"q and k_cache head dims differ: {d} and {int(k_cache.shape[3])}")
    if hkv == 0 or hq % hkv:
        raise InvalidArgumentError(f"q heads ({hq}) must be a multiple of the cache's heads ({hkv})")
    if k is not None:
        if int(k.shape[0]) != batch or int(k.shape[2]) != hkv or int(k.shape[3]) != d:
            raise InvalidArgumentError(f"k {tuple(k.shape)} does not fit the cache [B={batch}, Sn, {hkv}, {d}]")
        if tuple(v.shape[:3]) != tuple(k.shape[:3]) or int(v.shape[3]) != int(v_cache.shape[3]):
            raise InvalidArgumentError(f"v {tuple(v.shape)} does not fit k {tuple(k.shape)} and v_cache")
    capacity = None if paged else int(k_cache.shape[1])
    if cache_seqlens is None and k is not None:
        raise InvalidArgumentError("appending k and v needs cache_seqlens (where to write them)")
    lengths = _lengths(cache_seqlens, batch, as_torch, capacity)
    scale = 0.0
    if softmax_scale is not None:
        scale = float(softmax_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise InvalidArgumentError(f"softmax_scale must be a positive finite number, got {softmax_scale!r}")
    window = tuple(window_size) if window_size is not None else (-1, -1)
    if len(window) != 2:
        raise InvalidArgumentError(f"window_size must be (left, right), got {window_size!r}")
    try:
        score, mask = _compose_mods(score_mod, mask_mod, mod_args, float(softcap or 0.0), window, bool(causal),
                                    alibi_slopes)
    except TraceError:
        raise

    # Logical [B, H, S, D] views of the BSHD buffers (the paged cache is passed in its own layout).
    query = _permute(q, (0, 2, 1, 3))
    if paged:
        keys, values = k_cache, v_cache
    else:
        keys, values = _permute(k_cache, (0, 2, 1, 3)), _permute(v_cache, (0, 2, 1, 3))
    new_keys = _permute(k, (0, 2, 1, 3)) if k is not None else None
    new_values = _permute(v, (0, 2, 1, 3)) if v is not None else None

    desc = _lib.fa_decode_desc()
    desc.scale = scale
    desc.causal = 1 if causal else 0
    score_struct, mask_struct = ModStruct(score), ModStruct(mask)
    desc.score_mod = score_struct.struct
    desc.mask_mod = mask_struct.struct
    views = [D.view_or_null(x) for x in (query, keys, values, lengths, block_table, new_keys, new_values)]
    stream = _stream_of(q)
    out, lse = ctypes.c_void_p(), ctypes.c_void_p()
    library = _lib.lib()
    _lib.check(library.fa_decode(ctypes.byref(desc), *(D.pointer_of(view) for view in views),
                                 _stream_pointer(stream), D.OUTPUT_KIND, ctypes.byref(out), ctypes.byref(lse)))
    out, lse = D.adopt_all([out, lse], as_torch)
    if as_torch:
        out = out.transpose(1, 2).contiguous()
    else:
        out = np.ascontiguousarray(np.swapaxes(out, 1, 2))
    return (out, lse) if return_softmax_lse else out
