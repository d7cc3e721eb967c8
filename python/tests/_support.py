"""Shared test helpers: import path, library and torch availability, float64 NumPy references."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)  # test the working copy, installed or not

import numpy as np  # noqa: E402

import flexattention_swift as fa  # noqa: E402
from flexattention_swift import _expr as E  # noqa: E402

try:
    import torch  # noqa: F401

    HAS_TORCH = True
except ImportError:  # torch is optional
    torch = None
    HAS_TORCH = False

HAS_CUDA = bool(HAS_TORCH and torch.cuda.is_available())

HAS_LIBRARY = fa.is_available()
if not HAS_LIBRARY and os.environ.get("FLEXATTENTION_REQUIRE_LIBRARY") == "1":
    fa.library_path()  # raises LibraryNotFoundError with what was searched

_reason = "libflexattention.so not found (build with `swift build -c release` or set FLEXATTENTION_LIBRARY)"
requires_library = unittest.skipUnless(HAS_LIBRARY, _reason)
requires_torch = unittest.skipUnless(HAS_TORCH, "torch is not installed")
requires_cuda = unittest.skipUnless(HAS_CUDA, "no CUDA device")


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(generator, *shape, dtype=np.float32):
    return generator.standard_normal(shape).astype(dtype)


def grids(batch, heads, sq, skv):
    b = np.arange(batch).reshape(-1, 1, 1, 1)
    h = np.arange(heads).reshape(1, -1, 1, 1)
    q = np.arange(sq).reshape(1, 1, -1, 1)
    kv = np.arange(skv).reshape(1, 1, 1, -1)
    return b, h, q, kv


def reference(q, k, v, score_mod=None, mask_mod=None, scale=None, positions=None):
    """float64 attention: ``out [B, Hq, Sq, Dv]`` and natural-log ``lse [B, Hq, Sq]``.

    The mods are the same Python callables given to flex_attention, applied to NumPy index grids (they are
    written with operators and flexattention_swift functions that also work on arrays). Fully masked rows
    give 0 and -inf. ``positions`` replaces the q and kv index grids (decode: absolute positions).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, hq, sq, d = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    b, h, qi, ki = grids(batch, hq, sq, k.shape[2]) if positions is None else positions
    with np.errstate(all="ignore"):
        if score_mod is not None:
            s = np.broadcast_to(np.asarray(score_mod(s, b, h, qi, ki), dtype=np.float64), s.shape).copy()
        if mask_mod is not None:
            keep = np.broadcast_to(np.asarray(mask_mod(b, h, qi, ki), dtype=bool), s.shape)
            s = np.where(keep, s, -np.inf)
        m = s.max(axis=-1, keepdims=True)
        safe_m = np.where(np.isfinite(m), m, 0.0)
        p = np.exp(s - safe_m)
        l = p.sum(axis=-1, keepdims=True)
        out = np.where(l > 0, (p @ v) / np.where(l > 0, l, 1.0), 0.0)
        lse = np.where(l[..., 0] > 0, safe_m[..., 0] + np.log(np.where(l[..., 0] > 0, l[..., 0], 1.0)), -np.inf)
    return out, lse


def relative_error(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    denominator = np.linalg.norm(expected)
    return np.linalg.norm(actual - expected) / (denominator if denominator > 0 else 1.0)


def to_numpy(x):
    if HAS_TORCH and isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.dtype == torch.bfloat16 else x.detach().cpu().numpy()
    return np.asarray(x)


def evaluate(expr, env, tables=None):
    """Evaluates a traced Expr with the library's documented semantics (Int / and % floor, as in Python)."""
    tables = tables or {}
    values = {}
    for node in E.unique_nodes(expr):
        a = [values[id(x)] for x in node.args]
        if node.op == "var":
            value = env[node.payload]
        elif node.op == "lit":
            value = node.payload
        elif node.op == "param":
            value = node.payload.value
        elif node.op == "unary":
            f = node.payload
            value = {"-": lambda x: -x, "!": np.logical_not, "abs": np.abs, "exp": np.exp, "log": np.log,
                     "tanh": np.tanh, "sqrt": np.sqrt, "float": lambda x: np.asarray(x, dtype=np.float64)}[f](a[0])
        elif node.op == "binary":
            x, y = a
            op = node.payload
            if op == "/" and node.type == E.INT:
                value = np.floor_divide(x, y)
            elif op == "/":
                value = np.true_divide(x, y)
            elif op == "%":
                value = np.mod(x, y)
            else:
                value = {"+": np.add, "-": np.subtract, "*": np.multiply, "==": np.equal, "!=": np.not_equal,
                         "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                         "&&": np.logical_and, "||": np.logical_or, "min": np.minimum, "max": np.maximum}[op](x, y)
        elif node.op == "clamp":
            value = np.minimum(np.maximum(a[0], a[1]), a[2])
        elif node.op == "where":
            value = np.where(a[0], a[1], a[2])
        elif node.op == "lookup":
            array = np.asarray(tables.get(node.payload.name, node.payload.values))
            value = array[tuple(np.asarray(i) for i in a)]
        else:
            raise AssertionError(node.op)
        values[id(node)] = value
    return values[id(expr)]
