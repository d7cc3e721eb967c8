"""ctypes mirror of flexattention.h and the lazy loading of libflexattention.so.

Nothing here loads the library at import time: :func:`lib` finds and loads it at first use, and raises
:class:`~flexattention_swift.errors.LibraryNotFoundError` listing every place it searched when it is missing.
"""

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path

from .errors import LibraryNotFoundError, error_for_status

ABI_VERSION = 2
LIBRARY_ENV = "FLEXATTENTION_LIBRARY"
LIBRARY_NAME = "libflexattention.so"

# ---- DLPack ----------------------------------------------------------------------------------------------------

kDLCPU = 1
kDLCUDA = 2
kDLCUDAHost = 3
kDLCUDAManaged = 13

kDLInt = 0
kDLUInt = 1
kDLFloat = 2
kDLBfloat = 4
kDLBool = 6


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


DLManagedTensorDeleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", DLManagedTensorDeleter),
]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DLManagedTensorVersionedDeleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", DLManagedTensorVersionedDeleter),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

DLPACK_FLAG_BITMASK_READ_ONLY = 1 << 0
DLPACK_FLAG_BITMASK_IS_COPIED = 1 << 1

# ---- flexattention.h -------------------------------------------------------------------------------------------

FA_OK = 0
FA_ERROR_INVALID_ARGUMENT = 1
FA_ERROR_MOD = 2
FA_ERROR_CUDA = 3
FA_ERROR_OUT_OF_MEMORY = 4
FA_ERROR_UNSUPPORTED = 5

FA_SCALAR_INT = 0
FA_SCALAR_FLOAT = 1

FA_CAUSAL_NONE = 0
FA_CAUSAL_TOP_LEFT = 1
FA_CAUSAL_BOTTOM_RIGHT = 2

FA_DLPACK_VERSIONED = 0
FA_DLPACK_LEGACY = 1


class fa_table(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("values", ctypes.POINTER(DLTensor))]


class fa_parameter(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("kind", ctypes.c_int32),
        ("int_value", ctypes.c_int64),
        ("float_value", ctypes.c_double),
    ]


class fa_mod(ctypes.Structure):
    _fields_ = [
        ("text", ctypes.c_char_p),
        ("tables", ctypes.POINTER(fa_table)),
        ("table_count", ctypes.c_int64),
        ("parameters", ctypes.POINTER(fa_parameter)),
        ("parameter_count", ctypes.c_int64),
    ]


class fa_attention_desc(ctypes.Structure):
    _fields_ = [
        ("device", DLDevice),
        ("dtype", DLDataType),
        ("batch", ctypes.c_int64),
        ("query_heads", ctypes.c_int64),
        ("key_value_heads", ctypes.c_int64),
        ("query_length", ctypes.c_int64),
        ("key_length", ctypes.c_int64),
        ("head_dim", ctypes.c_int64),
        ("value_dim", ctypes.c_int64),
        ("scale", ctypes.c_double),
        ("causal", ctypes.c_int32),
        ("score_mod", fa_mod),
        ("mask_mod", fa_mod),
        ("block_mask", ctypes.c_void_p),
        ("sinks", ctypes.POINTER(ctypes.c_float)),
        ("sink_count", ctypes.c_int64),
        ("includes_backward", ctypes.c_int32),
        ("any_order_gradients", ctypes.c_int32),
    ]


class fa_decode_desc(ctypes.Structure):
    _fields_ = [
        ("scale", ctypes.c_double),
        ("causal", ctypes.c_int32),
        ("score_mod", fa_mod),
        ("mask_mod", fa_mod),
        ("sinks", ctypes.POINTER(ctypes.c_float)),
        ("sink_count", ctypes.c_int64),
    ]


_P = ctypes.POINTER
_vp = ctypes.c_void_p
_DT = _P(DLTensor)
_i64 = ctypes.c_int64
_i32 = ctypes.c_int32

# name: (restype, argtypes)
_PROTOTYPES = {
    "fa_abi_version": (_i32, []),
    "fa_last_error": (ctypes.c_char_p, []),
    "fa_block_mask_create": (_i32, [_P(fa_mod), _i64, _i64, _i64, _i64, _P(_vp)]),
    "fa_block_mask_sparsity": (_i32, [_vp, _P(ctypes.c_double)]),
    "fa_block_mask_description": (ctypes.c_char_p, [_vp]),
    "fa_block_mask_free": (None, [_vp]),
    "fa_attention_create": (_i32, [_P(fa_attention_desc), _P(_vp)]),
    "fa_attention_free": (None, [_vp]),
    "fa_attention_gradient_table_count": (_i64, [_vp]),
    "fa_attention_gradient_table_name": (ctypes.c_char_p, [_vp, _i64]),
    "fa_attention_forward": (
        _i32,
        [_vp, _DT, _DT, _DT, _P(fa_table), _i64, _vp, _i32, _P(_vp), _P(_vp)],
    ),
    "fa_attention_forward_into": (
        _i32,
        [_vp, _DT, _DT, _DT, _P(fa_table), _i64, _DT, _DT, _vp],
    ),
    "fa_attention_backward": (
        _i32,
        [_vp, _DT, _DT, _DT, _DT, _DT, _DT, _P(fa_table), _i64, _vp, _i32,
         _P(_vp), _P(_vp), _P(_vp), _P(_vp), _P(_vp)],
    ),
    "fa_decode": (
        _i32,
        [_P(fa_decode_desc), _DT, _DT, _DT, _DT, _DT, _DT, _DT, _vp, _i32, _P(_vp), _P(_vp)],
    ),
}

_lock = threading.Lock()
_library = None
_library_path = None


def candidate_paths():
    """Where :func:`lib` looks for the library, in order, as (description, path or None) pairs."""
    candidates = []
    env = os.environ.get(LIBRARY_ENV)
    if env:
        candidates.append((f"${LIBRARY_ENV}", env))
    try:
        from . import _checkout  # written by setup.py when installed from a checkout

        checkout = getattr(_checkout, "CHECKOUT", None)
    except ImportError:
        checkout = None
    if checkout:
        candidates.append(("the checkout this package was installed from",
                           os.path.join(checkout, ".build", "release", LIBRARY_NAME)))
    source_root = Path(__file__).resolve().parent.parent.parent
    if (source_root / "Package.swift").exists():
        path = str(source_root / ".build" / "release" / LIBRARY_NAME)
        if not any(p == path for _, p in candidates):
            candidates.append(("the checkout this package is imported from", path))
    system = ctypes.util.find_library("flexattention")
    if system:
        candidates.append(("the system's library path", system))
    return candidates


def _load():
    global _library, _library_path
    searched = []
    env = os.environ.get(LIBRARY_ENV)
    for description, path in candidate_paths():
        is_env = description.startswith("$")
        if os.sep in path and not os.path.exists(path):
            searched.append(f"{path} ({description}: not found)")
            if is_env:
                break
            continue
        try:
            handle = ctypes.CDLL(path)
        except OSError as error:
            searched.append(f"{path} ({description}: {error})")
            if is_env:
                break
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                function = getattr(handle, name)
            except AttributeError:
                raise LibraryNotFoundError(f"{path} does not export {name}: not a libflexattention.so of ABI "
                                           f"version {ABI_VERSION}") from None
            function.restype = restype
            function.argtypes = argtypes
        version = handle.fa_abi_version()
        if version != ABI_VERSION:
            raise LibraryNotFoundError(
                f"{path} implements flexattention ABI version {version}; this package needs {ABI_VERSION}")
        _library, _library_path = handle, path
        return handle
    if not searched:
        searched.append("(no candidate: set $%s or build with `swift build -c release`)" % LIBRARY_ENV)
    hint = ("" if env else
            f"; build it with `swift build -c release` in the repository root, or set ${LIBRARY_ENV} to its path")
    raise LibraryNotFoundError("libflexattention.so could not be loaded. Searched: " + "; ".join(searched) + hint)


def lib():
    """The loaded library (loaded on first use)."""
    if _library is not None:
        return _library
    with _lock:
        if _library is not None:
            return _library
        return _load()


def library_path():
    """The path of the loaded library, loading it if needed."""
    lib()
    return _library_path


def is_available():
    """Whether the library can be loaded (loads it)."""
    try:
        lib()
        return True
    except LibraryNotFoundError:
        return False


def last_error():
    message = lib().fa_last_error()
    return message.decode("utf-8", "replace") if message else ""


def check(status):
    """Raises the error of a non-zero fa_status with the library's message."""
    if status != FA_OK:
        raise error_for_status(status, last_error())
