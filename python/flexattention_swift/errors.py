"""Exceptions raised by flexattention_swift.

Every failure of the C library (a non-zero ``fa_status``) becomes an instance of a subclass of
:class:`FlexAttentionError` carrying the library's one-line message (``fa_last_error()``) and the status code.
Misuse caught in Python before the library is called raises the same classes with a message of our own.

=====================================  ===============  ===========================================
class                                  fa_status        also an instance of
=====================================  ===============  ===========================================
:class:`FlexAttentionError`            (base)           ``ValueError``
:class:`InvalidArgumentError`          1                ``ValueError``
:class:`ModError`                      2                ``ValueError``
:class:`TraceError`                    (Python only)    ``ModError``, ``TypeError``
:class:`CUDAError`                     3                ``RuntimeError``
:class:`OutOfMemoryError`              4                ``MemoryError``
:class:`UnsupportedError`              5                ``NotImplementedError``
:class:`LibraryNotFoundError`          (Python only)    ``OSError``
=====================================  ===============  ===========================================
"""

__all__ = [
    "FlexAttentionError",
    "InvalidArgumentError",
    "ModError",
    "TraceError",
    "CUDAError",
    "OutOfMemoryError",
    "UnsupportedError",
    "LibraryNotFoundError",
]


class FlexAttentionError(ValueError):
    """Base class of every error of this package.

    Attributes:
        status: the library's ``fa_status`` code, or ``None`` for an error found in Python.
        message: the library's message (``fa_last_error()``) or ours.
    """

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(FlexAttentionError):
    """A tensor, size or option that does not fit the call (``FA_ERROR_INVALID_ARGUMENT``)."""

    status = 1


class ModError(FlexAttentionError):
    """A score mod or mask that does not parse, check or trace (``FA_ERROR_MOD``)."""

    status = 2


class TraceError(ModError, TypeError):
    """A Python mod that cannot be traced into the textual form (found in Python, before the library)."""

    status = None


class CUDAError(FlexAttentionError, RuntimeError):
    """The CUDA driver or NVRTC could not be loaded, or failed (``FA_ERROR_CUDA``)."""

    status = 3


class OutOfMemoryError(FlexAttentionError, MemoryError):
    """Host or device memory ran out (``FA_ERROR_OUT_OF_MEMORY``)."""

    status = 4


class UnsupportedError(FlexAttentionError, NotImplementedError):
    """A valid request this build or device cannot run (``FA_ERROR_UNSUPPORTED``)."""

    status = 5


class LibraryNotFoundError(FlexAttentionError, OSError):
    """``libflexattention.so`` could not be found or loaded; the message lists every place searched."""

    status = None


_BY_STATUS = {
    1: InvalidArgumentError,
    2: ModError,
    3: CUDAError,
    4: OutOfMemoryError,
    5: UnsupportedError,
}


def error_for_status(status, message):
    """The exception for a non-zero ``fa_status`` and the library's message."""
    cls = _BY_STATUS.get(status, FlexAttentionError)
    if not message:
        message = f"flexattention call failed with status {status}"
    return cls(message, status)
