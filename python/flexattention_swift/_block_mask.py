"""Block masks: ``create_block_mask`` and the :class:`BlockMask` wrapping an ``fa_block_mask``."""

import ctypes
import itertools
import threading
import weakref

from . import _lib
from ._modstruct import ModStruct
from ._trace import trace
from .errors import InvalidArgumentError

_serials = itertools.count(1)
_serial_lock = threading.Lock()


def _free_block_mask(handle):
    if handle:
        _lib.lib().fa_block_mask_free(handle)


class BlockMask:
    """Which 64 x 64 blocks of the score matrix a mask keeps, and the mask itself (an ``fa_block_mask``).

    Made by :func:`create_block_mask`; pass it to :func:`flex_attention` as ``block_mask``. The library object
    is freed when this object is garbage collected, or at once by :meth:`free`. Attention calls copy what they
    need from it, so freeing it after a call is safe.

    Attributes:
        shape: ``(B, H, Q_LEN, KV_LEN)`` as given (a B or H of None is 1: the mask serves any batch or head
            count when it reads neither ``b`` nor ``h``).
        seq_lengths: ``(Q_LEN, KV_LEN)``.
        mask_mod: the mask as given (a callable or a string).
        mask_text: the mask in the library's textual form.
        BLOCK_SIZE: ``(64, 64)``, the CPU's block size (GPU calls rebuild the mask at their kernels' sizes).
        device: the device given to create_block_mask (the mask itself is not tied to a device).
    """

    BLOCK_SIZE = (64, 64)

    def __init__(self, handle, shape, mask_mod, traced, device):
        self._handle = handle
        self.shape = shape
        self.seq_lengths = shape[2:]
        self.mask_mod = mask_mod
        self._traced = traced
        self.device = device
        with _serial_lock:
            self.serial = next(_serials)
        description = _lib.lib().fa_block_mask_description(handle)
        self.mask_text = description.decode("utf-8", "replace") if description else traced.text
        self._finalizer = weakref.finalize(self, _free_block_mask, handle)

    @property
    def handle(self):
        """The ``fa_block_mask *`` (an int); InvalidArgumentError once freed."""
        if self._handle is None:
            raise InvalidArgumentError("this BlockMask was freed (BlockMask.free() was called)")
        return self._handle

    @property
    def is_freed(self):
        """Whether :meth:`free` was called."""
        return self._handle is None

    def free(self):
        """Frees the library object now; later use of this BlockMask raises InvalidArgumentError."""
        if self._handle is not None:
            self._handle = None
            self._finalizer()

    def sparsity(self):
        """The percentage (0 to 100) of blocks the mask removes entirely, as PyTorch's BlockMask.sparsity()."""
        out = ctypes.c_double()
        _lib.check(_lib.lib().fa_block_mask_sparsity(self.handle, ctypes.byref(out)))
        return 100.0 * out.value

    def to(self, device):
        """This mask (it is not tied to a device); records ``device`` as PyTorch's BlockMask.to would."""
        self.device = device
        return self

    def __repr__(self):
        if self._handle is None:
            return f"BlockMask(freed, shape={self.shape}, mask={self.mask_text!r})"
        return (f"BlockMask(shape={self.shape}, sparsity={self.sparsity():.2f}%, "
                f"block_size={self.BLOCK_SIZE}, mask={self.mask_text!r})")


def create_block_mask(mask_mod, B, H, Q_LEN, KV_LEN, device="cpu", BLOCK_SIZE=None, _compile=False, *,
                      mod_args=None):
    """Builds the :class:`BlockMask` of ``mask_mod`` over ``B x H x Q_LEN x KV_LEN``, as PyTorch's function.

    Args:
        mask_mod: ``def mask(b, h, q_idx, kv_idx) -> bool`` traced into the mod language (captured tensors and
            arrays become tables, captured numbers parameters), or a string of the textual form
            (``"q >= kv && q - kv < w"``), or None for no mask (every block kept).
        B, H: batch and head counts the mask is evaluated for; None means 1 (broadcast), valid when the mask
            reads neither ``b`` nor ``h``.
        Q_LEN, KV_LEN: the query and key lengths.
        device: recorded for PyTorch compatibility (the mask is not tied to a device).
        BLOCK_SIZE, _compile: accepted for PyTorch compatibility and ignored (blocks are 64 x 64).
        mod_args: for a string mask, a mapping from the names it reads to arrays/tensors (tables) and numbers
            (parameters), e.g. ``{"doc": doc_ids, "w": 256}``.

    Raises:
        TraceError: the callable does not trace. ModError: the library rejects the mask (message included).
    """
    if mask_mod is None:
        mask_mod = "q >= 0"
    batch = 1 if B is None else int(B)
    heads = 1 if H is None else int(H)
    for name, value in (("B", batch), ("H", heads), ("Q_LEN", Q_LEN), ("KV_LEN", KV_LEN)):
        if int(value) <= 0:
            raise InvalidArgumentError(f"create_block_mask: {name} must be positive, got {value}")
    traced = trace(mask_mod, "mask_mod", mod_args)
    library = _lib.lib()
    mod = ModStruct(traced)
    handle = ctypes.c_void_p()
    _lib.check(library.fa_block_mask_create(mod.pointer, batch, heads, int(Q_LEN), int(KV_LEN),
                                            ctypes.byref(handle)))
    try:
        return BlockMask(handle.value, (batch, heads, int(Q_LEN), int(KV_LEN)), mask_mod, traced, device)
    except BaseException:
        library.fa_block_mask_free(handle.value)
        raise
