"""DLTensor views of NumPy arrays and torch tensors (no copy), and adoption of the library's DLPack outputs.

An input is described by a :class:`TensorView`, which owns the ctypes ``DLTensor`` and its shape and stride
arrays and keeps the array or tensor alive while the view is. Outputs are ``DLManagedTensor`` (or
``DLManagedTensorVersioned``) pointers the library made: :func:`adopt` wraps one in a PyCapsule and hands it to
``torch.from_dlpack`` or ``numpy.from_dlpack``, which take ownership; if that fails before the capsule was
consumed, the deleter is called here so nothing leaks.
"""

import ctypes
import sys

import numpy as np

from . import _lib
from .errors import InvalidArgumentError

# ---- optional torch --------------------------------------------------------------------------------------------


def torch_module():
    """torch if it is already imported (or importable without cost to a caller that uses it), else None.

    Inputs that are torch tensors can only exist when torch was imported, so ``sys.modules`` is enough.
    """
    return sys.modules.get("torch")


def is_torch_tensor(x):
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


# ---- dtypes -----------------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {
    np.dtype(np.float32): (_lib.kDLFloat, 32),
    np.dtype(np.float16): (_lib.kDLFloat, 16),
    np.dtype(np.float64): (_lib.kDLFloat, 64),
    np.dtype(np.int32): (_lib.kDLInt, 32),
    np.dtype(np.int64): (_lib.kDLInt, 64),
}


def _torch_dtypes():
    torch = torch_module()
    return {
        torch.float32: (_lib.kDLFloat, 32),
        torch.float16: (_lib.kDLFloat, 16),
        torch.bfloat16: (_lib.kDLBfloat, 16),
        torch.float64: (_lib.kDLFloat, 64),
        torch.int32: (_lib.kDLInt, 32),
        torch.int64: (_lib.kDLInt, 64),
    }


def dtype_name(x):
    """A short name of an array's or tensor's element type ('float32', 'bfloat16', ...)."""
    if is_torch_tensor(x):
        return str(x.dtype).replace("torch.", "")
    return str(np.asarray(x).dtype) if not isinstance(x, np.ndarray) else str(x.dtype)


def dl_dtype(x):
    """(code, bits) of an array's or tensor's element type; InvalidArgumentError if DLPack has none here."""
    if is_torch_tensor(x):
        found = _torch_dtypes().get(x.dtype)
    else:
        found = _NUMPY_DTYPES.get(x.dtype)
    if found is None:
        raise InvalidArgumentError(f"unsupported element type {dtype_name(x)}")
    return found


def device_of(x):
    """(DLDeviceType, ordinal) of an array or tensor."""
    if is_torch_tensor(x):
        device = x.device
        if device.type == "cpu":
            return (_lib.kDLCPU, 0)
        if device.type == "cuda":
            return (_lib.kDLCUDA, device.index if device.index is not None else 0)
        raise InvalidArgumentError(f"tensors on {device} are not supported (only CPU and CUDA)")
    return (_lib.kDLCPU, 0)


# ---- views ------------------------------------------------------------------------------------------------------


class TensorView:
    """A ``DLTensor`` describing ``x`` (a NumPy array or a torch tensor) without copying it.

    ``pointer`` is a ``POINTER(DLTensor)`` valid while this object lives; the object keeps ``x`` alive.
    """

    __slots__ = ("owner", "struct", "_shape", "_strides", "pointer")

    def __init__(self, x):
        self.owner = x
        if not (isinstance(x, np.ndarray) or is_torch_tensor(x)):
            raise InvalidArgumentError(f"expected a NumPy array or a torch tensor, got {type(x).__name__}")
        code, bits = dl_dtype(x)
        if is_torch_tensor(x):
            shape = tuple(x.shape)
            strides = tuple(x.stride())
            data = x.data_ptr()
        else:
            shape = x.shape
            itemsize = x.dtype.itemsize
            if any(s % itemsize for s in x.strides):
                raise InvalidArgumentError(
                    f"array strides {x.strides} (bytes) are not multiples of the element size {itemsize}")
            strides = tuple(s // itemsize for s in x.strides)
            data = x.ctypes.data
        ndim = len(shape)
        device_type, device_id = device_of(x)
        self._shape = (ctypes.c_int64 * max(ndim, 1))(*shape)
        self._strides = (ctypes.c_int64 * max(ndim, 1))(*strides)
        struct = _lib.DLTensor()
        struct.data = data or None
        struct.device = _lib.DLDevice(device_type, device_id)
        struct.ndim = ndim
        struct.dtype = _lib.DLDataType(code, bits, 1)
        struct.shape = ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64))
        struct.strides = ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64))
        struct.byte_offset = 0
        self.struct = struct
        self.pointer = ctypes.pointer(struct)


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
        return ctypes.cast(pointer, ctypes.POINTER(_lib.DLManagedTensorVersioned)).contents
    return ctypes.cast(pointer, ctypes.POINTER(_lib.DLManagedTensor)).contents


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
        managed = _managed(pointer, kind)
        device = (int(managed.dl_tensor.device.device_type), int(managed.dl_tensor.device.device_id))
        capsule = _PyCapsule_New(pointer, name, None)
    except BaseException:
        delete_output(pointer, kind)
        raise
    try:
        if as_torch:
            return torch_module().from_dlpack(_Exporter(capsule, device))
        return np.from_dlpack(_Exporter(capsule, device))
    except BaseException:
        if _PyCapsule_IsValid(capsule, name):  # not consumed: still ours
            delete_output(pointer, kind)
        raise


def adopt_all(pointers, as_torch, kind=None):
    """Adopts several outputs; on a failure, the ones not yet adopted are deleted too."""
    results = []
    try:
        for i, pointer in enumerate(pointers):
            results.append(adopt(pointer, as_torch, kind))
    except BaseException:
        for rest in pointers[len(results) + 1:]:
            delete_output(rest.value if isinstance(rest, ctypes.c_void_p) else rest, kind)
        raise
    return results
