"""DLTensor views of NumPy arrays and torch tensors (no copy), and adoption of the library's DLPack outputs.

Inputs are described by :class:`TensorViews` (the inputs of one call, in one ctypes buffer) or a
:class:`TensorView` (one array), which own the ``DLTensor`` structs and their shape and stride arrays and keep
the arrays or tensors alive while they live. Outputs are ``DLManagedTensor`` (or ``DLManagedTensorVersioned``)
pointers the library made: :func:`adopt` wraps one in a PyCapsule and hands it to ``torch.from_dlpack`` or
``numpy.from_dlpack``, which take ownership; if that fails before the capsule was consumed, the deleter is called
here so nothing leaks.
"""

import ctypes
import struct
import sys

import numpy as np

from . import _lib
from .errors import InvalidArgumentError

# ---- optional torch --------------------------------------------------------------------------------------------

_torch = None  # the torch module, once it was found imported (it stays imported)


def torch_module():
    """torch if it is already imported (or importable without cost to a caller that uses it), else None.

    Inputs that are torch tensors can only exist when torch was imported, so ``sys.modules`` is enough.
    """
    global _torch
    if _torch is None:
        _torch = sys.modules.get("torch")
    return _torch


def is_torch_tensor(x):
    torch = _torch or torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


# ---- dtypes -----------------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {
    np.dtype(np.float32): (_lib.kDLFloat, 32),
    np.dtype(np.float16): (_lib.kDLFloat, 16),
    np.dtype(np.float64): (_lib.kDLFloat, 64),
    np.dtype(np.int32): (_lib.kDLInt, 32),
    np.dtype(np.int64): (_lib.kDLInt, 64),
}

_torch_dtypes = None  # the torch counterpart of _NUMPY_DTYPES, made at first use (torch is imported by then)
_torch_cpu = None  # torch.device("cpu"), made with _torch_dtypes: comparing devices is cheaper than reading .type


def _torch_dtype_table():
    global _torch_dtypes, _torch_cpu
    if _torch_dtypes is None:
        torch = torch_module()
        _torch_cpu = torch.device("cpu")
        _torch_dtypes = {
            torch.float32: (_lib.kDLFloat, 32),
            torch.float16: (_lib.kDLFloat, 16),
            torch.bfloat16: (_lib.kDLBfloat, 16),
            torch.float64: (_lib.kDLFloat, 64),
            torch.int32: (_lib.kDLInt, 32),
            torch.int64: (_lib.kDLInt, 64),
        }
    return _torch_dtypes


def dtype_name(x):
    """A short name of an array's or tensor's element type ('float32', 'bfloat16', ...)."""
    if is_torch_tensor(x):
        return str(x.dtype).replace("torch.", "")
    return str(np.asarray(x).dtype) if not isinstance(x, np.ndarray) else str(x.dtype)


def dl_dtype(x):
    """(code, bits) of an array's or tensor's element type; InvalidArgumentError if DLPack has none here."""
    if is_torch_tensor(x):
        found = _torch_dtype_table().get(x.dtype)
    else:
        found = _NUMPY_DTYPES.get(x.dtype)
    if found is None:
        raise InvalidArgumentError(f"unsupported element type {dtype_name(x)}")
    return found


def device_of(x):
    """(DLDeviceType, ordinal) of an array or tensor."""
    return _torch_device(x) if is_torch_tensor(x) else (_lib.kDLCPU, 0)


def _torch_device(x):
    """(DLDeviceType, ordinal) of a torch tensor; InvalidArgumentError unless it is on the CPU or a CUDA GPU."""
    if x.is_cuda:
        return (_lib.kDLCUDA, x.get_device())
    _torch_dtype_table()  # makes _torch_cpu
    device = x.device
    if device == _torch_cpu:
        return (_lib.kDLCPU, 0)
    raise InvalidArgumentError(f"tensors on {device} are not supported (only CPU and CUDA)")


# ---- views ------------------------------------------------------------------------------------------------------

# A DLTensor as the struct module packs it: data, device (type, id), ndim, dtype (code, bits, lanes), shape,
# strides, byte_offset. Native alignment ("@") lays it out as the C compiler and ctypes.Structure do (48 bytes).
_DLTENSOR_FORMAT = "PiiiBBHPPQ"


class _Layout:
    """Where DLTensors of given ranks lie in one buffer: the structs, then each one's shape and strides.

    ``buffer_type`` is the ctypes type of the buffer, ``packer`` fills a whole buffer in one call, ``dims_offsets``
    are the (shape, strides) byte offsets of each tensor's arrays from the buffer's start.
    """

    __slots__ = ("buffer_type", "packer", "dims_offsets")

    def __init__(self, ranks):
        dims = 2 * sum(ranks)

        class Buffer(ctypes.Structure):
            _fields_ = [("tensors", _lib.DLTensor * len(ranks)), ("dims", ctypes.c_int64 * max(dims, 1))]

        self.buffer_type = Buffer
        self.packer = struct.Struct("@" + _DLTENSOR_FORMAT * len(ranks) + f"{dims}q")
        self.dims_offsets = []
        at = Buffer.dims.offset
        for rank in ranks:
            self.dims_offsets.append((at, at + 8 * rank))
            at += 16 * rank


_layouts = {}  # ranks -> _Layout (a handful: the inputs of a forward or backward call, tables of 1 to 3 dims)


def _layout(ranks):
    layout = _layouts.get(ranks)
    if layout is None:
        layout = _layouts.setdefault(ranks, _Layout(ranks))
    return layout


def _describe(x):
    """(data, device type, device id, dtype code, bits, shape, strides in elements) of an array or tensor."""
    torch = _torch or torch_module()
    if torch is not None and isinstance(x, torch.Tensor):
        found = _torch_dtype_table().get(x.dtype)
        if found is None:
            raise InvalidArgumentError(f"unsupported element type {dtype_name(x)}")
        _check_storage(x)
        return (x.data_ptr(),) + _torch_device(x) + found + (x.shape, x.stride())
    if not isinstance(x, np.ndarray):
        raise InvalidArgumentError(f"expected a NumPy array or a torch tensor, got {type(x).__name__}")
    found = _NUMPY_DTYPES.get(x.dtype)
    if found is None:
        raise InvalidArgumentError(f"unsupported element type {dtype_name(x)}")
    itemsize = x.itemsize
    if any(s % itemsize for s in x.strides):
        raise InvalidArgumentError(
            f"array strides {x.strides} (bytes) are not multiples of the element size {itemsize}")
    strides = tuple(s // itemsize for s in x.strides)
    return (x.ctypes.data, _lib.kDLCPU, 0) + found + (x.shape, strides)


def _check_storage(x):
    """Refuses a tensor whose storage no longer holds its view: one freed or shrunk in place
    (``x.untyped_storage().resize_(0)``, as FSDP does to parameters) would hand the library a dangling pointer."""
    if x.numel() == 0:
        return
    reach = x.storage_offset() + sum((n - 1) * s for n, s in zip(x.shape, x.stride()))
    needed = (reach + 1) * x.element_size()
    held = x.untyped_storage().nbytes()
    if held < needed:
        raise InvalidArgumentError(
            f"a tensor of shape {tuple(x.shape)} needs {needed} bytes of storage but its storage holds {held}: "
            "was it freed or resized?")


class TensorViews:
    """``DLTensor``s describing NumPy arrays or torch tensors without copying them, all in one ctypes buffer.

    ``views[i]`` is the i-th ``DLTensor`` (a ctypes struct in the buffer; a ``POINTER(DLTensor)`` argument takes
    it as is), and ``*views`` all of them in order. The buffer holds the structs and their shape and stride
    arrays and is filled by one ``struct.pack_into``, a fraction of the cost of a ctypes Structure and two arrays
    per tensor on every call. The object keeps the arrays or tensors alive.
    """

    __slots__ = ("owners", "buffer")

    def __init__(self, xs):
        self.owners = xs
        described = [_describe(x) for x in xs]
        layout = _layout(tuple([len(d[5]) for d in described]))
        self.buffer = layout.buffer_type()
        base = ctypes.addressof(self.buffer)
        values = []  # the packer's order: every DLTensor's fields, then every shape and strides
        for (data, device_type, device_id, code, bits, shape, _), (shape_at, strides_at) in zip(
                described, layout.dims_offsets):
            values += (data, device_type, device_id, len(shape), code, bits, 1, base + shape_at, base + strides_at,
                       0)
        for *_, shape, strides in described:
            values += shape
            values += strides
        layout.packer.pack_into(self.buffer, 0, *values)

    def __getitem__(self, index):
        return self.buffer.tensors[index]

    def __iter__(self):
        return iter(self.buffer.tensors)


class TensorView:
    """A ``DLTensor`` describing ``x`` (a NumPy array or a torch tensor) without copying it.

    ``pointer`` is a ``POINTER(DLTensor)`` valid while this object lives; the object keeps ``x`` alive.
    """

    __slots__ = ("owner", "struct", "pointer")

    def __init__(self, x):
        self.owner = x
        self.struct = TensorViews((x,))[0]  # shares (and keeps alive) the buffer with the shape and strides
        self.pointer = ctypes.pointer(self.struct)


def view_or_null(x):
    """A TensorView of x, or None for None."""
    return None if x is None else TensorView(x)


def pointer_of(view):
    return None if view is None else view.pointer


# ---- outputs ----------------------------------------------------------------------------------------------------

_NAME_LEGACY = b"dltensor"
_NAME_VERSIONED = b"dltensor_versioned"

_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_PyCapsule_IsValid = ctypes.pythonapi.PyCapsule_IsValid
_PyCapsule_IsValid.restype = ctypes.c_int
_PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]

# The kind of DLPack object requested from the library. The legacy DLManagedTensor is understood by every
# NumPy (>= 1.22) and torch release that has from_dlpack; the versioned one only by recent ones.
OUTPUT_KIND = _lib.FA_DLPACK_LEGACY


def _managed(pointer, kind):
    if kind == _lib.FA_DLPACK_VERSIONED:
        return _lib.DLManagedTensorVersioned.from_address(pointer)
    return _lib.DLManagedTensor.from_address(pointer)


def delete_output(pointer, kind=None):
    """Calls the deleter of a DLPack object the library returned and that no consumer took."""
    if not pointer:
        return
    kind = OUTPUT_KIND if kind is None else kind
    managed = _managed(pointer, kind)
    if managed.deleter:
        if kind == _lib.FA_DLPACK_VERSIONED:
            managed.deleter(ctypes.cast(pointer, ctypes.POINTER(_lib.DLManagedTensorVersioned)))
        else:
            managed.deleter(ctypes.cast(pointer, ctypes.POINTER(_lib.DLManagedTensor)))


class _Exporter:
    """The smallest object from_dlpack accepts: it hands over one capsule, once."""

    __slots__ = ("capsule", "device")

    def __init__(self, capsule, device):
        self.capsule = capsule
        self.device = device

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None, **_):
        capsule, self.capsule = self.capsule, None
        if capsule is None:
            raise BufferError("this DLPack capsule was already consumed")
        return capsule

    def __dlpack_device__(self):
        return self.device


def adopt(pointer, as_torch, kind=None):
    """Wraps a library output (a ``void *`` to a DLPack managed tensor) into a torch tensor or NumPy array.

    No copy is made: the consumer takes ownership and calls the deleter when the result is freed. If the
    consumer fails before it consumed the capsule, the deleter is called here and the error propagates.
    """
    kind = OUTPUT_KIND if kind is None else kind
    pointer = pointer.value if isinstance(pointer, ctypes.c_void_p) else pointer
    if not pointer:
        raise InvalidArgumentError("the library returned no output tensor")
    name = _NAME_VERSIONED if kind == _lib.FA_DLPACK_VERSIONED else _NAME_LEGACY
    try:
        capsule = _PyCapsule_New(pointer, name, None)
    except BaseException:
        delete_output(pointer, kind)
        raise
    try:
        if as_torch and kind == _lib.FA_DLPACK_LEGACY:
            # torch.from_dlpack consumes a legacy capsule as is: no exporter object, no stream handshake (the
            # library's outputs are ready on the stream they were queued on, which the caller keeps using).
            return torch_module().from_dlpack(capsule)
        tensor = _managed(pointer, kind).dl_tensor
        exporter = _Exporter(capsule, (tensor.device.device_type, tensor.device.device_id))
        return torch_module().from_dlpack(exporter) if as_torch else np.from_dlpack(exporter)
    except BaseException:
        if _PyCapsule_IsValid(capsule, name):  # not consumed: still ours
            delete_output(pointer, kind)
        raise


def adopt_all(pointers, as_torch, kind=None):
    """Adopts several outputs; on a failure, the ones not yet adopted are deleted too."""
    results = []
    try:
        for pointer in pointers:
            results.append(adopt(pointer, as_torch, kind))
    except BaseException:
        for rest in pointers[len(results) + 1:]:
            delete_output(rest.value if isinstance(rest, ctypes.c_void_p) else rest, kind)
        raise
    return results
