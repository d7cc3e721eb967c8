"""flex_attention: prepared ``fa_attention`` objects (cached), the forward and backward calls, autograd."""

import collections
import ctypes
import math
import threading
import weakref

import numpy as np

from . import _dlpack as D
from . import _lib
from ._block_mask import BlockMask
from ._expr import FLOAT
from ._modstruct import ModStruct, TableArray, table_identity, table_values_on
from ._trace import trace
from .errors import InvalidArgumentError, UnsupportedError

CACHE_SIZE = 64

# ---- prepared objects ----------------------------------------------------------------------------------------------

_pending_lock = threading.Lock()
_pending = []  # states of CUDA objects whose last queued work had not run when they were dropped


class _State:
    __slots__ = ("handle", "events")

    def __init__(self, handle):
        self.handle = handle
        self.events = {}  # CUstream -> a torch.cuda.Event re-recorded after each piece of work queued there

    def idle(self):
        return all(event.query() for event in list(self.events.values()))


def _free_now(state):
    handle, state.handle = state.handle, None
    if handle:
        _lib.lib().fa_attention_free(handle)


def _release(state):
    """Frees a prepared object once the work queued with it has run (never waiting for it)."""
    try:
        if not state.idle():
            with _pending_lock:
                _pending.append(state)
            return
        _free_now(state)
    except Exception:  # interpreter shutdown: the process frees everything anyway
        pass


def _drain_pending():
    if not _pending:
        return
    with _pending_lock:
        keep = []
        for state in _pending:
            try:
                if state.idle():
                    _free_now(state)
                else:
                    keep.append(state)
            except Exception:
                pass
        _pending[:] = keep


class PreparedAttention:
    """An ``fa_attention`` (sizes, dtype, device, mods and mask prepared once), freed when dropped."""

    def __init__(self, handle, cuda):
        self._state = _State(handle)
        self.cuda = cuda
        library = _lib.lib()
        count = library.fa_attention_gradient_table_count(handle)
        self.gradient_table_names = [library.fa_attention_gradient_table_name(handle, i).decode("utf-8")
                                     for i in range(count)]
        self._finalizer = weakref.finalize(self, _release, self._state)
        self.refs = ()  # weak references the cache key relies on

    @property
    def handle(self):
        return self._state.handle

    def used_on(self, stream):
        """Records that work was queued with this object on a torch CUDA stream (for a deferred free).

        One event per stream, recorded again after each call: a record replaces the previous one, so the event
        completes once the latest work queued there has run, which is what freeing needs to wait for. Making
        the event once saves creating one per call. Threads sharing this object and stream record into the same
        event (setdefault keeps the first one made), so no call's work goes untracked.
        """
        if self.cuda:
            events = self._state.events
            event = events.get(stream.cuda_stream)
            if event is None:
                event = events.setdefault(stream.cuda_stream, D.torch_module().cuda.Event())
            event.record(stream)


_cache_lock = threading.Lock()
_cache = collections.OrderedDict()


def clear_cache():
    """Drops every cached prepared attention object (each is freed once its queued work has run)."""
    with _cache_lock:
        _cache.clear()
    _drain_pending()


def cache_info():
    """The number of cached prepared attention objects and the capacity."""
    return {"size": len(_cache), "capacity": CACHE_SIZE}


def _cache_get(key, refs_check):
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None:
            return None
        if not refs_check(entry):
            del _cache[key]
            return None
        _cache.move_to_end(key)
        return entry


def _cache_put(key, entry):
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


# ---- checks ------------------------------------------------------------------------------------------------------

_TORCH_DTYPES = ("float32", "float16", "bfloat16")
_NUMPY_DTYPES = ("float32", "float16")
_NUMPY_DTYPE_OBJECTS = frozenset(np.dtype(name) for name in _NUMPY_DTYPES)
_torch_dtype_objects = None  # frozenset of the torch dtypes in _TORCH_DTYPES, made at first use


def _allowed_dtype_objects(as_torch):
    global _torch_dtype_objects
    if not as_torch:
        return _NUMPY_DTYPE_OBJECTS
    if _torch_dtype_objects is None:
        torch = D.torch_module()
        _torch_dtype_objects = frozenset(getattr(torch, name) for name in _TORCH_DTYPES)
    return _torch_dtype_objects


def _backend(tensors, names):
    torch_count = sum(D.is_torch_tensor(t) for t in tensors)
    if torch_count == len(tensors):
        return True
    if torch_count:
        raise InvalidArgumentError(f"{', '.join(names)} mix torch tensors and NumPy arrays; pass one kind")
    for t, name in zip(tensors, names):
        if not isinstance(t, np.ndarray):
            raise InvalidArgumentError(f"{name} must be a torch tensor or a NumPy array, got {type(t).__name__}")
    return False


def _inputs_agree(tensors, as_torch, ndim):
    """Whether the inputs surely pass check_inputs: one supported dtype, one CPU or CUDA device, ndim each.

    The common case in a few attribute reads; when it says no, check_inputs' full checks decide and word the error.
    """
    first = tensors[0]
    dtype = first.dtype
    if dtype not in _allowed_dtype_objects(as_torch):
        return False
    if not as_torch:
        return all(t.ndim == ndim and t.dtype == dtype for t in tensors)
    device = first.device
    if not (first.is_cuda or device.type == "cpu"):
        return False
    return all(t.ndim == ndim and t.dtype == dtype and t.device == device for t in tensors)


def check_inputs(tensors, names, as_torch, ndim=4):
    """Same dtype (a supported one), same device, and ``ndim`` dimensions for each tensor."""
    if _inputs_agree(tensors, as_torch, ndim):
        return
    allowed = _TORCH_DTYPES if as_torch else _NUMPY_DTYPES
    for t, name in zip(tensors, names):
        if t.ndim != ndim:
            raise InvalidArgumentError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
        dtype = D.dtype_name(t)
        if dtype not in allowed:
            raise InvalidArgumentError(f"{name} has dtype {dtype}; supported: {', '.join(allowed)}")
    dtypes = {D.dtype_name(t) for t in tensors}
    if len(dtypes) > 1:
        raise InvalidArgumentError(
            "dtype mismatch: " + ", ".join(f"{n} is {D.dtype_name(t)}" for t, n in zip(tensors, names)))
    if as_torch:
        devices = {str(t.device) for t in tensors}
        if len(devices) > 1:
            raise InvalidArgumentError(
                "device mismatch: " + ", ".join(f"{n} is on {t.device}" for t, n in zip(tensors, names)))
        for t, name in zip(tensors, names):
            if t.device.type not in ("cpu", "cuda"):
                raise InvalidArgumentError(f"{name} is on {t.device}; only CPU and CUDA tensors are supported")


def _stream_of(tensor):
    """torch's current stream on a CUDA tensor's device (None on the CPU)."""
    if D.is_torch_tensor(tensor) and tensor.is_cuda:
        return D.torch_module().cuda.current_stream(tensor.get_device())
    return None


def _stream_pointer(stream):
    return None if stream is None else ctypes.c_void_p(stream.cuda_stream)


# ---- the call -----------------------------------------------------------------------------------------------------


_NO_TABLES = TableArray([])  # the tables argument of a call without Float tables (a null pointer and 0)


class _Call:
    """One flex_attention call's prepared object, Float tables and stream, shared by forward and backward."""

    def __init__(self, prepared, float_sources, as_torch):
        self.prepared = prepared
        self.float_sources = float_sources
        self.as_torch = as_torch

    def _tables(self, values):
        """The per-call ``tables`` argument: the Float tables the prepared object lists, as float32."""
        if not self.float_sources:
            return _NO_TABLES
        listed = set(self.prepared.gradient_table_names)
        return TableArray([(s.name, v) for s, v in zip(self.float_sources, values) if s.name in listed])

    def forward(self, q, k, v, table_values):
        library = _lib.lib()
        views = D.TensorViews((q, k, v))
        tables = self._tables(table_values)
        stream = _stream_of(q)
        out, lse = ctypes.c_void_p(), ctypes.c_void_p()
        _lib.check(library.fa_attention_forward(
            self.prepared.handle, *views, tables.pointer, tables.count, _stream_pointer(stream), D.OUTPUT_KIND,
            ctypes.byref(out), ctypes.byref(lse)))
        if stream is not None:
            self.prepared.used_on(stream)
        return D.adopt_all([out, lse], self.as_torch)

    def backward(self, q, k, v, out, lse, grad_out, table_values):
        library = _lib.lib()
        views = D.TensorViews((q, k, v, out, lse, grad_out))
        tables = self._tables(table_values)
        stream = _stream_of(q)
        names = self.prepared.gradient_table_names
        dq, dk, dv = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        table_grads = (ctypes.c_void_p * max(len(names), 1))()
        _lib.check(library.fa_attention_backward(
            self.prepared.handle, *views, tables.pointer, tables.count,
            _stream_pointer(stream), D.OUTPUT_KIND, ctypes.byref(dq), ctypes.byref(dk), ctypes.byref(dv),
            table_grads if names else None, None))
        if stream is not None:
            self.prepared.used_on(stream)
        pointers = [dq, dk, dv] + [ctypes.c_void_p(table_grads[i]) for i in range(len(names))]
        results = D.adopt_all(pointers, self.as_torch)
        return results[0], results[1], results[2], dict(zip(names, results[3:]))


_function = None


def _autograd_function():
    global _function
    if _function is not None:
        return _function
    import torch

    class FlexAttentionFunction(torch.autograd.Function):
        """flex_attention as an autograd node: gradients for Q, K, V and the score mod's Float tables."""

        @staticmethod
        def forward(ctx, call, q, k, v, *tables):
            out, lse = call.forward(q, k, v, tables)
            ctx.call = call
            ctx.save_for_backward(q, k, v, out, lse, *tables)
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_out, grad_lse):
            q, k, v, out, lse, *tables = ctx.saved_tensors
            call = ctx.call
            if grad_out is None:
                grad_out = torch.zeros_like(out)
            elif 0 in grad_out.stride() and grad_out.numel() > 1:
                grad_out = grad_out.contiguous()  # expanded gradients (sum().backward()) have zero strides
            if grad_out.dtype != out.dtype:
                grad_out = grad_out.to(out.dtype)
            dq, dk, dv, by_name = call.backward(q, k, v, out, lse, grad_out, tables)
            table_grads = []
            for i, (source, values) in enumerate(zip(call.float_sources, tables)):
                grad = by_name.get(source.name)
                if grad is None or not ctx.needs_input_grad[4 + i]:
                    table_grads.append(None)
                    continue
                table_grads.append(grad.reshape(values.shape).to(values.dtype))
            return (None,
                    dq if ctx.needs_input_grad[1] else None,
                    dk if ctx.needs_input_grad[2] else None,
                    dv if ctx.needs_input_grad[3] else None,
                    *table_grads)

    _function = FlexAttentionFunction
    return _function


def _mod_key(score):
    """(key, refs): what the cache key records of a score mod, and the tensors it identifies by ``id``.

    The key holds the text, the parameter values and the tables (Int tables by identity or contents); refs are
    (weak reference, tensor) pairs of the torch Int tables, so that a cached entry is reused only while they live.
    """
    if score is None:
        return ("", (), ()), []
    table_key = []
    refs = []
    for source in score.tables:
        values = source.values
        entry = (source.name, source.kind, source.shape, D.dtype_name(values))
        if source.kind != FLOAT:
            entry = entry + table_identity(source)
            if D.is_torch_tensor(source.original):
                refs.append((weakref.ref(source.original), source.original))
        table_key.append(entry)
    return (score.text, tuple((p.name, p.type, p.value) for p in score.params), tuple(table_key)), refs


def _prepare(desc_values, score, block_mask, includes_backward):
    """Finds or makes the prepared object for a call (a cache of CACHE_SIZE entries, LRU)."""
    (device_type, device_id, code, bits, batch, hq, hkv, sq, skv, d, dv, scale, deterministic) = desc_values
    mod_key, refs = _mod_key(score)
    base_key = (desc_values,) + mod_key + (block_mask.serial if block_mask is not None else 0,)
    wanted = [(True,)] if includes_backward else [(False,), (True,)]
    live_refs = [r for r, _ in refs]
    originals = [o for _, o in refs]

    def refs_check(entry):
        return all(ref() is original for ref, original in zip(entry.refs, originals))

    for suffix in wanted:
        found = _cache_get(base_key + suffix, refs_check)
        if found is not None:
            return found
    library = _lib.lib()
    desc = _lib.fa_attention_desc()
    desc.device = _lib.DLDevice(device_type, device_id)
    desc.dtype = _lib.DLDataType(code, bits, 1)
    desc.batch, desc.query_heads, desc.key_value_heads = batch, hq, hkv
    desc.query_length, desc.key_length, desc.head_dim, desc.value_dim = sq, skv, d, dv
    desc.scale = scale
    desc.causal = _lib.FA_CAUSAL_NONE
    mod = ModStruct(score)
    desc.score_mod = mod.struct
    desc.block_mask = block_mask.handle if block_mask is not None else None
    desc.includes_backward = 1 if includes_backward else 0
    desc.any_order_gradients = 0 if deterministic else 1
    handle = ctypes.c_void_p()
    _lib.check(library.fa_attention_create(ctypes.byref(desc), ctypes.byref(handle)))
    try:
        prepared = PreparedAttention(handle.value, device_type == _lib.kDLCUDA)
    except BaseException:
        library.fa_attention_free(handle.value)
        raise
    prepared.refs = live_refs
    _cache_put(base_key + ((bool(includes_backward),)), prepared)
    return prepared


class AuxOutput(collections.namedtuple("AuxOutput", ["lse", "max_scores"])):
    """The auxiliary outputs PyTorch's ``return_aux`` asks for: ``lse`` (or None); ``max_scores`` is always None."""


def flex_attention(query, key, value, score_mod=None, block_mask=None, scale=None, enable_gqa=False,
                   return_lse=False, kernel_options=None, *, return_aux=None, mod_args=None, deterministic=True):
    """Attention with a programmable score mod and block mask, as ``torch.nn.attention.flex_attention``.

    Args:
        query: ``[B, Hq, Sq, D]``; key: ``[B, Hkv, Skv, D]``; value: ``[B, Hkv, Skv, Dv]``. torch tensors (CPU
            or CUDA; float32, float16 or bfloat16; any strides) or NumPy arrays (float32 or float16; strides
            multiples of the element size). No input is copied.
        score_mod: ``def score_mod(score, b, h, q_idx, kv_idx) -> score`` (traced once per call; captured
            tensors/arrays become tables, captured numbers parameters), a string of the mod language
            (``"score + bias[h, q - kv + 7]"``, its tables and parameters in ``mod_args``), or None.
        block_mask: a :class:`BlockMask` from :func:`create_block_mask`, or None (no mask).
        scale: the factor of ``q . k`` before the score mod; None means ``1 / sqrt(D)``.
        enable_gqa: allow ``Hq`` to be a multiple of ``Hkv`` (grouped-query attention); otherwise they must be
            equal, as in PyTorch.
        return_lse: also return the log-sum-exp (natural log), float32 ``[B, Hq, Sq]``.
        kernel_options: accepted for PyTorch compatibility and ignored.
        return_aux: PyTorch's ``AuxRequest`` (newer releases): with ``lse=True`` the call returns
            ``(out, AuxOutput(lse, None))``; ``max_scores`` is not supported.
        mod_args: names read by a string ``score_mod`` mapped to arrays/tensors (tables) or numbers.
        deterministic: whether the gradients have the same bits on every run (the default). False lets an H100
            add dQ's partial sums in any order where that is faster (head dims above 128, by 9-11%), as PyTorch's
            cuDNN backend does; dK, dV and the tables' gradients stay deterministic, and so does everything
            elsewhere.

    Returns:
        ``out`` ``[B, Hq, Sq, Dv]`` (contiguous, the inputs' dtype, same kind and device), or ``(out, lse)``.
        With torch inputs that require grad (or captured Float tables that do), ``out`` has a gradient
        function computing dQ, dK, dV and the tables' gradients with the library's backward pass.

    Raises:
        InvalidArgumentError, ModError, TraceError, UnsupportedError, CUDAError, OutOfMemoryError (with the
        library's message); see :mod:`flexattention_swift.errors`.
    """
    names = ("query", "key", "value")
    tensors = (query, key, value)
    as_torch = _backend(tensors, names)
    check_inputs(tensors, names, as_torch)
    batch, hq, sq, d = map(int, query.shape)
    kb, hkv, skv, kd = map(int, key.shape)
    vb, vh, vs, dv = map(int, value.shape)
    if kb != batch or vb != batch:
        raise InvalidArgumentError(f"batch sizes differ: query {batch}, key {kb}, value {vb}")
    if vh != hkv or vs != skv:
        raise InvalidArgumentError(f"key {tuple(key.shape)} and value {tuple(value.shape)} differ in heads or "
                                   f"length")
    if kd != d:
        raise InvalidArgumentError(f"query and key head dims differ: {d} and {kd}")
    if hq != hkv:
        if not enable_gqa:
            raise InvalidArgumentError(f"query has {hq} heads and key/value {hkv}: pass enable_gqa=True for "
                                       f"grouped-query attention")
        if hkv == 0 or hq % hkv:
            raise InvalidArgumentError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    if block_mask is not None:
        if not isinstance(block_mask, BlockMask):
            raise InvalidArgumentError(f"block_mask must be a BlockMask from create_block_mask, got "
                                       f"{type(block_mask).__name__}")
        block_mask.handle  # raises when freed
        mb, mh, mq, mkv = block_mask.shape
        if (mq, mkv) != (sq, skv):
            raise InvalidArgumentError(f"block_mask was created for Q_LEN={mq}, KV_LEN={mkv} but the inputs have "
                                       f"Sq={sq}, Skv={skv}")
        if mb not in (1, batch) or mh not in (1, hq):
            raise InvalidArgumentError(f"block_mask was created for B={mb}, H={mh}; the inputs have B={batch}, "
                                       f"H={hq}")
    if scale is None:
        scale_value = 0.0
    else:
        scale_value = float(scale)
        if not math.isfinite(scale_value) or scale_value <= 0:
            raise InvalidArgumentError(f"scale must be a positive finite number, got {scale!r}")
    score = None
    if score_mod is not None:
        score = trace(score_mod, "score_mod", mod_args)
        if score.text.strip() == "score":
            score = None
    _drain_pending()
    device_type, device_id = D.device_of(query)
    code, bits = D.dl_dtype(query)
    float_sources = score.float_tables() if score is not None else []
    want_lse = bool(return_lse)
    if return_aux is not None:
        if return_lse:
            raise InvalidArgumentError("pass return_lse or return_aux, not both")
        if getattr(return_aux, "max_scores", False):
            raise UnsupportedError("return_aux with max_scores=True is not supported")
    if as_torch:
        table_values = table_values_on(float_sources, query.device, True)
        float_values = [table_values[s.name] for s in float_sources]
        needs_grad = D.torch_module().is_grad_enabled() and (
            any(t.requires_grad for t in tensors) or any(t.requires_grad for t in float_values))
    else:
        table_values = table_values_on(float_sources, None, False)
        float_values = [table_values[s.name] for s in float_sources]
        needs_grad = False
    desc_values = (device_type, device_id, code, bits, batch, hq, hkv, sq, skv, d, dv, scale_value, bool(deterministic))
    prepared = _prepare(desc_values, score, block_mask, needs_grad)
    call = _Call(prepared, float_sources, as_torch)
    if needs_grad:
        out, lse = _autograd_function().apply(call, query, key, value, *float_values)
    else:
        out, lse = call.forward(query, key, value, float_values)
    if return_aux is not None:
        return out, AuxOutput(lse if getattr(return_aux, "lse", False) else None, None)
    return (out, lse) if want_lse else out
