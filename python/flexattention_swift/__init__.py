"""flexattention_swift: a drop-in for PyTorch's ``torch.nn.attention.flex_attention`` on the FlexAttention library.

Pure Python over the library's C ABI (``libflexattention.so``, loaded with ctypes at first use). Importing this
package needs NumPy only; torch tensors are accepted when torch is installed.

    from flexattention_swift import flex_attention, create_block_mask

    def causal(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    mask = create_block_mask(causal, None, None, 1024, 1024)
    out = flex_attention(q, k, v, score_mod=lambda score, b, h, q, kv: score + bias[h, q - kv + 1023],
                         block_mask=mask)

The library is found through ``$FLEXATTENTION_LIBRARY`` (a path to the .so), else the checkout this package was
installed or imported from (``.build/release/libflexattention.so``), else the system's library path.
"""

from ._attention import cache_info, clear_cache, flex_attention
from ._block_mask import BlockMask, create_block_mask
from ._decode import flash_attn_with_kvcache
from ._lib import is_available, library_path
from ._symbolic import (
    abs,
    clamp,
    exp,
    kv_len,
    log,
    maximum,
    minimum,
    q_len,
    sigmoid,
    sqrt,
    table,
    tanh,
    where,
)
from . import errors
from .errors import *  # noqa: F401,F403 (the exception classes, listed in errors.__all__)

__version__ = "0.1.0"


def mod_text(mod, kind="score_mod", mod_args=None):
    """The textual form a Python mod traces to (``kind``: ``'score_mod'`` or ``'mask_mod'``).

    Useful to see what the library receives: ``mod_text(lambda s, b, h, q, kv: s * 2)`` is ``'score * 2.0'``.
    Captured numbers print as parameter names and captured arrays as table names; see :func:`trace_mod` for
    their values.
    """
    from ._trace import trace

    return trace(mod, kind, mod_args).text


def trace_mod(mod, kind="score_mod", mod_args=None):
    """The traced mod: ``.text``, ``.params`` (name, type, value) and ``.tables`` (name, kind, shape, values)."""
    from ._trace import trace

    return trace(mod, kind, mod_args)


__all__ = [
    "flex_attention",
    "create_block_mask",
    "BlockMask",
    "flash_attn_with_kvcache",
    "table",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sigmoid",
    "where",
    "minimum",
    "maximum",
    "clamp",
    "q_len",
    "kv_len",
    "mod_text",
    "trace_mod",
    "clear_cache",
    "cache_info",
    "is_available",
    "library_path",
] + errors.__all__
