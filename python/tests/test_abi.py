"""The ctypes mirror of flexattention.h, DLTensor views, DLPack adoption and library lookup (no library needed)."""

import ctypes
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np

from _support import PYTHON_DIR, fa, requires_torch, torch
from flexattention_swift import _dlpack as D
from flexattention_swift import _lib as L
from flexattention_swift.errors import error_for_status

HEADER_DIR = os.path.join(os.path.dirname(PYTHON_DIR), "Sources", "CFlexAttention", "include")

# sizeof and offsetof on x86-64 / arm64 Linux (LP64), as a C compiler reports them for flexattention.h.
LAYOUT = {
    "DLDevice": (L.DLDevice, 8, {}),
    "DLDataType": (L.DLDataType, 4, {}),
    "DLTensor": (L.DLTensor, 48, {"data": 0, "device": 8, "ndim": 16, "dtype": 20, "shape": 24, "strides": 32,
                                  "byte_offset": 40}),
    "DLManagedTensor": (L.DLManagedTensor, 64, {"dl_tensor": 0, "manager_ctx": 48, "deleter": 56}),
    "DLManagedTensorVersioned": (L.DLManagedTensorVersioned, 80,
                                 {"version": 0, "manager_ctx": 8, "deleter": 16, "flags": 24, "dl_tensor": 32}),
    "fa_table": (L.fa_table, 16, {"name": 0, "values": 8}),
    "fa_parameter": (L.fa_parameter, 32, {"name": 0, "kind": 8, "int_value": 16, "float_value": 24}),
    "fa_mod": (L.fa_mod, 40, {"text": 0, "tables": 8, "table_count": 16, "parameters": 24,
                              "parameter_count": 32}),
    "fa_attention_desc": (L.fa_attention_desc, 200, {
        "device": 0, "dtype": 8, "batch": 16, "query_heads": 24, "key_value_heads": 32, "query_length": 40,
        "key_length": 48, "head_dim": 56, "value_dim": 64, "scale": 72, "causal": 80, "score_mod": 88,
        "mask_mod": 128, "block_mask": 168, "sinks": 176, "sink_count": 184, "includes_backward": 192,
        "any_order_gradients": 196}),
    "fa_decode_desc": (L.fa_decode_desc, 112, {"scale": 0, "causal": 8, "score_mod": 16, "mask_mod": 56,
                                               "sinks": 96, "sink_count": 104}),
}


class LayoutTests(unittest.TestCase):
    def test_sizes_and_offsets(self):
        for name, (struct, size, offsets) in LAYOUT.items():
            self.assertEqual(ctypes.sizeof(struct), size, name)
            for field, offset in offsets.items():
                self.assertEqual(getattr(struct, field).offset, offset, f"{name}.{field}")

    def test_against_the_header_with_a_c_compiler(self):
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        header = os.path.join(HEADER_DIR, "flexattention.h")
        if compiler is None or not os.path.exists(header):
            self.skipTest("no C compiler or no header")
        lines = []
        for name, (struct, size, offsets) in LAYOUT.items():
            lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
            for field in offsets:
                lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
        for name in ("FA_ABI_VERSION", "FA_OK", "FA_ERROR_INVALID_ARGUMENT", "FA_ERROR_MOD", "FA_ERROR_CUDA",
                     "FA_ERROR_OUT_OF_MEMORY", "FA_ERROR_UNSUPPORTED", "FA_SCALAR_INT", "FA_SCALAR_FLOAT",
                     "FA_CAUSAL_NONE", "FA_CAUSAL_TOP_LEFT", "FA_CAUSAL_BOTTOM_RIGHT", "FA_DLPACK_VERSIONED",
                     "FA_DLPACK_LEGACY", "kDLCPU", "kDLCUDA", "kDLInt", "kDLFloat", "kDLBfloat"):
            lines.append(f'printf("{name} %d\\n", (int){name});')
        source = "#include <stdio.h>\n#include <stddef.h>\n#include \"flexattention.h\"\nint main(void) {\n" + \
            "\n".join(lines) + "\nreturn 0; }\n"
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "layout.c")
            with open(path, "w") as f:
                f.write(source)
            binary = os.path.join(directory, "layout")
            subprocess.run([compiler, "-I", HEADER_DIR, path, "-o", binary], check=True, capture_output=True)
            output = subprocess.run([binary], check=True, capture_output=True, text=True).stdout
        reported = dict(line.rsplit(" ", 1) for line in output.strip().splitlines())
        for name, (struct, size, offsets) in LAYOUT.items():
            self.assertEqual(int(reported[name]), ctypes.sizeof(struct), name)
            for field in offsets:
                self.assertEqual(int(reported[f"{name}.{field}"]), getattr(struct, field).offset, f"{name}.{field}")
        self.assertEqual(int(reported["FA_ABI_VERSION"]), L.ABI_VERSION)
        for name in reported:
            if name not in LAYOUT and "." not in name and name != "FA_ABI_VERSION":
                self.assertEqual(int(reported[name]), getattr(L, name), name)


class ErrorTests(unittest.TestCase):
    def test_status_classes(self):
        self.assertIsInstance(error_for_status(1, "m"), fa.InvalidArgumentError)
        self.assertIsInstance(error_for_status(2, "m"), fa.ModError)
        self.assertIsInstance(error_for_status(3, "m"), fa.CUDAError)
        self.assertIsInstance(error_for_status(3, "m"), RuntimeError)
        self.assertIsInstance(error_for_status(4, "m"), fa.OutOfMemoryError)
        self.assertIsInstance(error_for_status(4, "m"), MemoryError)
        self.assertIsInstance(error_for_status(5, "m"), fa.UnsupportedError)
        self.assertIsInstance(error_for_status(5, "m"), NotImplementedError)
        for status in range(1, 6):
            error = error_for_status(status, "the message")
            self.assertIsInstance(error, fa.FlexAttentionError)
            self.assertIsInstance(error, ValueError)
            self.assertEqual(error.status, status)
            self.assertEqual(error.message, "the message")

    def test_missing_library_is_a_lazy_error_listing_the_search(self):
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {PYTHON_DIR!r})
            import flexattention_swift as fa   # importing needs no library
            print(fa.mod_text(lambda s, b, h, q, kv: s))
            try:
                fa.create_block_mask(lambda b, h, q, kv: q >= kv, 1, 1, 8, 8)
            except fa.LibraryNotFoundError as error:
                assert isinstance(error, OSError)
                print("ERROR", error)
        """)
        env = dict(os.environ, FLEXATTENTION_LIBRARY="/nonexistent/libflexattention.so")
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("score", result.stdout)
        self.assertIn("ERROR", result.stdout)
        self.assertIn("/nonexistent/libflexattention.so", result.stdout)
        self.assertIn("FLEXATTENTION_LIBRARY", result.stdout)

    def test_import_does_not_import_torch(self):
        script = f"import sys; sys.path.insert(0, {PYTHON_DIR!r}); import flexattention_swift; " \
                 f"print('torch' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        self.assertEqual(result.stdout.strip(), "False", result.stderr)


class ViewTests(unittest.TestCase):
    def test_numpy_view(self):
        x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
        view = D.TensorView(x)
        s = view.struct
        self.assertEqual(s.data, x.ctypes.data)
        self.assertEqual((s.device.device_type, s.device.device_id), (L.kDLCPU, 0))
        self.assertEqual(s.ndim, 4)
        self.assertEqual((s.dtype.code, s.dtype.bits, s.dtype.lanes), (L.kDLFloat, 32, 1))
        self.assertEqual([s.shape[i] for i in range(4)], [2, 3, 4, 5])
        self.assertEqual([s.strides[i] for i in range(4)], [60, 20, 5, 1])
        self.assertEqual(s.byte_offset, 0)

    def test_permuted_and_sliced_views_are_not_copied(self):
        x = np.zeros((2, 7, 3, 8), dtype=np.float16)  # BSHD
        y = np.transpose(x, (0, 2, 1, 3))[:, :, 1:, :]
        view = D.TensorView(y)
        self.assertEqual(view.struct.data, x.ctypes.data + 1 * 3 * 8 * 2)
        self.assertEqual([view.struct.strides[i] for i in range(4)], [168, 8, 24, 1])
        self.assertEqual((view.struct.dtype.code, view.struct.dtype.bits), (L.kDLFloat, 16))

    def test_int_tables_and_bad_inputs(self):
        self.assertEqual(D.TensorView(np.zeros(3, np.int64)).struct.dtype.bits, 64)
        self.assertEqual(D.TensorView(np.zeros(3, np.int32)).struct.dtype.code, L.kDLInt)
        raw = np.zeros(16, np.uint8)
        odd = np.ndarray((3,), dtype=np.float32, buffer=raw, offset=0, strides=(5,))
        with self.assertRaises(fa.InvalidArgumentError):
            D.TensorView(odd)
        with self.assertRaises(fa.InvalidArgumentError):
            D.TensorView(np.zeros(3, np.complex64))
        with self.assertRaises(fa.InvalidArgumentError):
            D.TensorView([1, 2, 3])

    def test_several_views_in_one_buffer(self):
        arrays = [np.zeros((2, 3, 4, 5), np.float32)[:, :, 1:], np.zeros((3, 4, 5), np.float16),
                  np.arange(7, dtype=np.int64)]
        views = D.TensorViews(arrays)
        for i, x in enumerate(arrays):
            s = views[i]
            self.assertEqual(s.data, x.ctypes.data)
            self.assertEqual((s.device.device_type, s.device.device_id), (L.kDLCPU, 0))
            self.assertEqual(s.ndim, x.ndim)
            self.assertEqual((s.dtype.code, s.dtype.bits, s.dtype.lanes), D.dl_dtype(x) + (1,))
            self.assertEqual([s.shape[d] for d in range(x.ndim)], list(x.shape))
            self.assertEqual([s.strides[d] for d in range(x.ndim)], [st // x.itemsize for st in x.strides])
            self.assertEqual(s.byte_offset, 0)

    @requires_torch
    def test_torch_view(self):
        x = torch.zeros(2, 7, 3, 8, dtype=torch.bfloat16).transpose(1, 2)
        view = D.TensorView(x)
        s = view.struct
        self.assertEqual(s.data, x.data_ptr())
        self.assertEqual((s.dtype.code, s.dtype.bits), (L.kDLBfloat, 16))
        self.assertEqual([s.shape[i] for i in range(4)], [2, 3, 7, 8])
        self.assertEqual([s.strides[i] for i in range(4)], list(x.stride()))


class _FakeOutput:
    """A DLManagedTensor made in Python whose deleter counts its calls."""

    def __init__(self, array, versioned=False, dtype=(L.kDLFloat, 32)):
        self.array = array
        self.deleted = 0
        self.shape = (ctypes.c_int64 * array.ndim)(*array.shape)
        self.strides = (ctypes.c_int64 * array.ndim)(*(s // array.itemsize for s in array.strides))
        struct_type = L.DLManagedTensorVersioned if versioned else L.DLManagedTensor
        deleter_type = L.DLManagedTensorVersionedDeleter if versioned else L.DLManagedTensorDeleter
        self.managed = struct_type()
        tensor = self.managed.dl_tensor
        tensor.data = array.ctypes.data
        tensor.device = L.DLDevice(L.kDLCPU, 0)
        tensor.ndim = array.ndim
        tensor.dtype = L.DLDataType(dtype[0], dtype[1], 1)
        tensor.shape = ctypes.cast(self.shape, ctypes.POINTER(ctypes.c_int64))
        tensor.strides = ctypes.cast(self.strides, ctypes.POINTER(ctypes.c_int64))
        if versioned:
            self.managed.version = L.DLPackVersion(1, 0)

        def deleter(_):
            self.deleted += 1
        self.deleter = deleter_type(deleter)
        self.managed.deleter = self.deleter
        self.pointer = ctypes.addressof(self.managed)


class AdoptTests(unittest.TestCase):
    def test_numpy_adopts_without_copy_and_deletes_once(self):
        source = np.arange(12, dtype=np.float32).reshape(3, 4)
        fake = _FakeOutput(source)
        adopted = D.adopt(fake.pointer, as_torch=False, kind=L.FA_DLPACK_LEGACY)
        np.testing.assert_array_equal(adopted, source)
        self.assertEqual(adopted.ctypes.data, source.ctypes.data)
        self.assertEqual(fake.deleted, 0)
        del adopted
        gc.collect()
        self.assertEqual(fake.deleted, 1)

    def test_versioned(self):
        if tuple(int(p) for p in np.__version__.split(".")[:2]) < (2, 1):
            self.skipTest("NumPy < 2.1 reads only legacy DLPack capsules")
        source = np.arange(6, dtype=np.float32)
        fake = _FakeOutput(source, versioned=True)
        adopted = D.adopt(fake.pointer, as_torch=False, kind=L.FA_DLPACK_VERSIONED)
        np.testing.assert_array_equal(adopted, source)
        del adopted
        gc.collect()
        self.assertEqual(fake.deleted, 1)

    def test_failed_consumption_deletes(self):
        source = np.zeros(4, dtype=np.float32)
        fake = _FakeOutput(source, dtype=(L.kDLBfloat, 16))  # NumPy has no bfloat16
        with self.assertRaises(Exception):
            D.adopt(fake.pointer, as_torch=False, kind=L.FA_DLPACK_LEGACY)
        gc.collect()
        self.assertEqual(fake.deleted, 1)

    def test_adopt_all_deletes_the_rest_on_failure(self):
        bad = _FakeOutput(np.zeros(4, np.float32), dtype=(L.kDLBfloat, 16))
        good = _FakeOutput(np.zeros(4, np.float32))
        with self.assertRaises(Exception):
            D.adopt_all([bad.pointer, good.pointer], as_torch=False, kind=L.FA_DLPACK_LEGACY)
        gc.collect()
        self.assertEqual((bad.deleted, good.deleted), (1, 1))

    @requires_torch
    def test_torch_adopts(self):
        source = np.arange(6, dtype=np.float32).reshape(2, 3)
        fake = _FakeOutput(source)
        adopted = D.adopt(fake.pointer, as_torch=True, kind=L.FA_DLPACK_LEGACY)
        self.assertEqual(adopted.data_ptr(), source.ctypes.data)
        self.assertEqual(adopted.tolist(), source.tolist())
        del adopted
        gc.collect()
        self.assertEqual(fake.deleted, 1)


if __name__ == "__main__":
    unittest.main()
