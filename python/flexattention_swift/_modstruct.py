"""``fa_mod`` structs for traced mods, keeping every buffer they point to alive."""

import ctypes

import numpy as np

from . import _lib
from ._dlpack import TensorView, is_torch_tensor
from ._expr import INT


class ModStruct:
    """An ``fa_mod`` for a :class:`~flexattention_swift._trace.TracedMod` (or an empty one for ``None``).

    ``table_values`` optionally replaces the arrays given for some tables (by name), e.g. Float tables moved to
    the call's device. The struct and everything it points to live as long as this object.
    """

    __slots__ = ("struct", "_keep", "tables")

    def __init__(self, mod=None, table_values=None):
        self.struct = _lib.fa_mod()
        self._keep = []
        self.tables = None
        if mod is None or not mod.text:
            return
        text = mod.text.encode("utf-8")
        self._keep.append(text)
        self.struct.text = text
        if mod.tables:
            self.tables = make_tables(mod.tables, table_values)
            self.struct.tables = self.tables.array
            self.struct.table_count = len(mod.tables)
        if mod.params:
            array = (_lib.fa_parameter * len(mod.params))()
            for slot, param in zip(array, mod.params):
                name = param.name.encode("utf-8")
                self._keep.append(name)
                slot.name = name
                if param.type == INT:
                    slot.kind = _lib.FA_SCALAR_INT
                    slot.int_value = int(param.value)
                else:
                    slot.kind = _lib.FA_SCALAR_FLOAT
                    slot.float_value = float(param.value)
            self._keep.append(array)
            self.struct.parameters = array
            self.struct.parameter_count = len(mod.params)

    @property
    def pointer(self):
        return ctypes.pointer(self.struct)


class TableArray:
    """A C array of ``fa_table`` over named values, with their DLTensor views kept alive."""

    __slots__ = ("array", "count", "_keep")

    def __init__(self, names_and_values):
        self.count = len(names_and_values)
        self.array = (_lib.fa_table * max(self.count, 1))()
        self._keep = []
        for slot, (name, values) in zip(self.array, names_and_values):
            encoded = name.encode("utf-8")
            view = TensorView(values)
            self._keep.append((encoded, view))
            slot.name = encoded
            slot.values = view.pointer

    @property
    def pointer(self):
        return ctypes.cast(self.array, ctypes.POINTER(_lib.fa_table)) if self.count else None


def make_tables(sources, table_values=None):
    table_values = table_values or {}
    return TableArray([(s.name, table_values.get(s.name, s.values)) for s in sources])


def table_values_on(sources, device, as_torch):
    """The Float tables' values as a call on ``device`` reads them (the ``tables`` argument of a call).

    The library takes these per-call values as float32 (row-major contiguous on CUDA; CPU tensors for CPU
    calls): torch tensors are converted (differentiably, so gradients reach the original table) and moved to the
    call's device; NumPy arrays are converted to float32.
    """
    result = {}
    if not as_torch:
        for source in sources:
            values = source.values
            if is_torch_tensor(values):
                values = values.detach().cpu().numpy()
            result[source.name] = np.ascontiguousarray(values, dtype=np.float32)
        return result
    import torch

    for source in sources:
        values = source.values
        if isinstance(values, np.ndarray):
            values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        if values.device != device:
            values = values.to(device, non_blocking=True)
        if values.dtype != torch.float32:
            values = values.to(torch.float32)
        result[source.name] = values.contiguous()
    return result


def table_identity(source):
    """What a cache key records of a table whose values are baked into a prepared object."""
    values = source.values
    if is_torch_tensor(source.original):
        original = source.original
        return ("tensor", id(original), original._version, str(values.dtype), tuple(values.shape),
                str(values.device))
    array = np.ascontiguousarray(values)
    import hashlib

    digest = hashlib.blake2b(array.view(np.uint8).reshape(-1), digest_size=16).hexdigest()
    return ("array", str(array.dtype), array.shape, digest)
