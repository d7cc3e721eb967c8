"""flex_attention and create_block_mask on NumPy arrays against a float64 NumPy reference (needs the library)."""

import gc
import unittest

import numpy as np

from _support import randn, reference, relative_error, requires_library, rng
from _support import fa

TOLERANCE = 2e-5


def inputs(seed, batch=2, hq=4, hkv=4, sq=37, skv=53, d=32, dv=None, dtype=np.float32):
    g = rng(seed)
    q = randn(g, batch, hq, sq, d, dtype=dtype)
    k = randn(g, batch, hkv, skv, d, dtype=dtype)
    v = randn(g, batch, hkv, skv, dv or d, dtype=dtype)
    return q, k, v


@requires_library
class AttentionTests(unittest.TestCase):
    def check(self, q, k, v, score_mod=None, mask_mod=None, scale=None, enable_gqa=False, tolerance=TOLERANCE,
              block_mask=None):
        batch, hq, sq, _ = q.shape
        skv = k.shape[2]
        if mask_mod is not None and block_mask is None:
            block_mask = fa.create_block_mask(mask_mod, None, None, sq, skv)
        out, lse = fa.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale,
                                     enable_gqa=enable_gqa, return_lse=True)
        expected_out, expected_lse = reference(q, k, v, score_mod, mask_mod, scale)
        self.assertEqual(out.shape, expected_out.shape)
        self.assertEqual(out.dtype, q.dtype)
        self.assertEqual(lse.shape, expected_lse.shape)
        self.assertEqual(lse.dtype, np.float32)
        self.assertLess(relative_error(out, expected_out), tolerance)
        finite = np.isfinite(expected_lse)
        np.testing.assert_array_equal(np.isfinite(lse), finite)
        self.assertLess(relative_error(lse[finite], expected_lse[finite]), tolerance)
        return out, lse

    def test_plain_and_scale(self):
        q, k, v = inputs(1)
        self.check(q, k, v)
        self.check(q, k, v, scale=0.3)
        out = fa.flex_attention(q, k, v)
        self.assertIsInstance(out, np.ndarray)

    def test_odd_shapes(self):
        self.check(*inputs(2, batch=1, hq=3, hkv=3, sq=1, skv=131, d=80))
        self.check(*inputs(3, batch=3, hq=2, hkv=2, sq=70, skv=9, d=16, dv=24))

    def test_gqa(self):
        q, k, v = inputs(4, hq=6, hkv=2, d=80)
        self.check(q, k, v, enable_gqa=True)
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, k, v)
        self.assertIn("enable_gqa", str(caught.exception))

    def test_strided_bshd_inputs(self):
        g = rng(5)
        q = randn(g, 2, 37, 4, 32).transpose(0, 2, 1, 3)  # BSHD memory, logical BHSD
        k = randn(g, 2, 53, 4, 32).transpose(0, 2, 1, 3)
        v = randn(g, 2, 53, 4, 32).transpose(0, 2, 1, 3)
        self.assertFalse(q.flags["C_CONTIGUOUS"])
        self.check(q, k, v, mask_mod=lambda b, h, q, kv: q >= kv)

    def test_float16(self):
        q, k, v = inputs(6, dtype=np.float16)
        self.check(q, k, v, mask_mod=lambda b, h, q, kv: q >= kv, tolerance=5e-3)

    def test_causal(self):
        self.check(*inputs(7, sq=90, skv=90), mask_mod=lambda b, h, q_idx, kv_idx: q_idx >= kv_idx)

    def test_sliding_window(self):
        window = 16
        self.check(*inputs(8, sq=100, skv=100),
                   mask_mod=lambda b, h, q, kv: (q >= kv) & (q - kv < window))

    def test_prefix_lm(self):
        prefix = 20
        self.check(*inputs(9, sq=70, skv=70), mask_mod=lambda b, h, q, kv: (kv < prefix) | (q >= kv))

    def test_document_mask_with_int_table(self):
        lengths = [10, 25, 7, 30]
        doc = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
        n = doc.size
        self.check(*inputs(10, sq=n, skv=n), mask_mod=lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv))

    def test_per_batch_prefix_table(self):
        prefix_len = np.array([5, 17], dtype=np.int64)
        mask = lambda b, h, q, kv: (kv < prefix_len[b]) | (q >= kv)  # noqa: E731
        q, k, v = inputs(11, batch=2, sq=40, skv=40)
        block_mask = fa.create_block_mask(mask, 2, None, 40, 40)
        self.check(q, k, v, mask_mod=mask, block_mask=block_mask)

    def test_alibi_with_float_table(self):
        heads = 4
        slopes = np.array([2.0 ** (-8 * (i + 1) / heads) for i in range(heads)], dtype=np.float32)
        self.check(*inputs(12, hq=heads, hkv=heads), score_mod=lambda s, b, h, q, kv: s + slopes[h] * (kv - q))

    def test_relative_position_bias_table(self):
        g = rng(13)
        sq, skv, heads = 37, 53, 4
        bias = randn(g, heads, sq + skv - 1)
        self.check(*inputs(13, sq=sq, skv=skv, hq=heads, hkv=heads),
                   score_mod=lambda score, b, h, q, kv: score + bias[h, q - kv + skv - 1])

    def test_float16_and_float64_tables(self):
        g = rng(23)
        for dtype in (np.float16, np.float64):
            bias = randn(g, 4, 90).astype(dtype)
            self.check(*inputs(23), score_mod=lambda score, b, h, q, kv: score + bias[h, q - kv + 52])

    def test_soft_cap_with_captured_number(self):
        q, k, v = inputs(14)
        q = q * 4
        for cap in (20.0, 5.0, 1.5):  # new values: no error, new results
            self.check(q, k, v, score_mod=lambda s, b, h, qi, kv: cap * fa.tanh(s / cap))

    def test_dilated_window(self):
        size, dilation = 6, 3
        self.check(*inputs(15, sq=80, skv=80),
                   mask_mod=lambda b, h, q, kv: (q >= kv) & (q - kv < size * dilation) & ((q - kv) % dilation == 0))

    def test_chunked(self):
        chunk = 16
        self.check(*inputs(16, sq=75, skv=75), mask_mod=lambda b, h, q, kv: q // chunk == kv // chunk)

    def test_mask_and_score_together(self):
        cap = 10.0
        self.check(*inputs(17, sq=64, skv=64), score_mod=lambda s, b, h, q, kv: cap * fa.tanh(s / cap),
                   mask_mod=lambda b, h, q, kv: abs(q - kv) <= 8)

    def test_floor_division_and_modulo_of_negative_values(self):
        """Python's // and % on negative Ints give the same values in the library as in NumPy."""
        self.check(*inputs(18, sq=29, skv=41),
                   score_mod=lambda s, b, h, q, kv: s + ((q - kv) // 3) * 0.25 + ((kv - q) % 5) * 0.5
                   - ((q - 20) % -7) * 0.125)

    def test_sequence_length_symbols(self):
        q, k, v = inputs(24, sq=30, skv=50)
        out = fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: fa.where(
            qi + fa.kv_len - fa.q_len >= kv, s, s - 3.0))
        expected, _ = reference(q, k, v, lambda s, b, h, qi, kv: np.where(qi + 50 - 30 >= kv, s, s - 3.0))
        self.assertLess(relative_error(out, expected), TOLERANCE)

    def test_string_mods(self):
        bias = randn(rng(19), 4, 90)
        q, k, v = inputs(19)
        out = fa.flex_attention(q, k, v, score_mod="score + bias[h, q - kv + 52] * w",
                                mod_args={"bias": bias, "w": 0.5})
        expected, _ = reference(q, k, v, lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52] * 0.5)
        self.assertLess(relative_error(out, expected), TOLERANCE)
        mask = fa.create_block_mask("let d = q - kv; d >= 0 && d < w", None, None, 37, 53, mod_args={"w": 9})
        self.check(q, k, v, mask_mod=lambda b, h, qi, kv: (qi - kv >= 0) & (qi - kv < 9), block_mask=mask)

    def test_identity_score_mod_and_noop_mask(self):
        q, k, v = inputs(20)
        self.check(q, k, v, score_mod=lambda s, b, h, qi, kv: s)
        mask = fa.create_block_mask(None, None, None, 37, 53)
        self.check(q, k, v, block_mask=mask)


@requires_library
class BlockMaskTests(unittest.TestCase):
    def test_sparsity_and_repr(self):
        mask = fa.create_block_mask(lambda b, h, q, kv: q >= kv, None, None, 256, 256)
        self.assertEqual(mask.shape, (1, 1, 256, 256))
        # 4 x 4 blocks of 64: the 6 above the diagonal are removed
        self.assertAlmostEqual(mask.sparsity(), 100.0 * 6 / 16, places=5)
        self.assertIn("q >= kv", repr(mask))
        self.assertIn("sparsity", repr(mask))
        self.assertEqual(mask.mask_text, "q >= kv")

    def test_freed_mask(self):
        q, k, v = inputs(21)
        mask = fa.create_block_mask(lambda b, h, q, kv: q >= kv, None, None, 37, 53)
        mask.free()
        mask.free()  # twice is fine
        self.assertIn("freed", repr(mask))
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, k, v, block_mask=mask)
        self.assertIn("freed", str(caught.exception))

    def test_wrong_lengths(self):
        q, k, v = inputs(22)
        mask = fa.create_block_mask(lambda b, h, q, kv: q >= kv, None, None, 64, 64)
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, k, v, block_mask=mask)
        self.assertIn("Q_LEN=64", str(caught.exception))

    def test_masks_are_freed_by_the_garbage_collector(self):
        for _ in range(50):
            fa.create_block_mask(lambda b, h, q, kv: q >= kv, None, None, 128, 128)
        gc.collect()

    def test_bad_string_mask_carries_the_library_message(self):
        with self.assertRaises(fa.ModError) as caught:
            fa.create_block_mask("q >= ", None, None, 8, 8)
        self.assertTrue(caught.exception.message)
        self.assertEqual(caught.exception.status, 2)
        with self.assertRaises(fa.ModError) as caught:
            fa.create_block_mask("q >= unknown_thing", None, None, 8, 8)
        self.assertIn("unknown_thing", str(caught.exception))

    def test_table_index_out_of_range_is_a_mod_error(self):
        doc = np.zeros(10, np.int32)
        with self.assertRaises(fa.ModError):
            fa.create_block_mask(lambda b, h, q, kv: doc[q] == doc[kv], None, None, 20, 20)


@requires_library
class BadInputTests(unittest.TestCase):
    def test_dtype(self):
        q, k, v = inputs(30)
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q.astype(np.float64), k, v)
        self.assertIn("float64", str(caught.exception))
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, k.astype(np.float16), v)
        self.assertIn("mismatch", str(caught.exception))

    def test_ndim(self):
        q, k, v = inputs(31)
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q[0], k, v)
        self.assertIn("4 dimensions", str(caught.exception))

    def test_shapes(self):
        q, k, v = inputs(32)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k[:1], v[:1])
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q[..., :16], k, v)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k, v, scale=-1.0)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k, [1, 2])

    def test_mod_that_does_not_trace(self):
        q, k, v = inputs(33)

        def mod(score, b, h, q, kv):
            return score if q > kv else -score
        with self.assertRaises(fa.TraceError) as caught:
            fa.flex_attention(q, k, v, score_mod=mod)
        self.assertIn("control flow", str(caught.exception))

    def test_bad_string_mod(self):
        q, k, v = inputs(34)
        with self.assertRaises(fa.ModError) as caught:
            fa.flex_attention(q, k, v, score_mod="score + ")
        self.assertTrue(caught.exception.message)
        with self.assertRaises(fa.ModError) as caught:
            fa.flex_attention(q, k, v, score_mod="score + missing[h]")
        self.assertIn("missing", str(caught.exception))

    def test_table_index_out_of_range_in_a_score_mod(self):
        q, k, v = inputs(35)
        bias = np.zeros((4, 3), np.float32)
        with self.assertRaises(fa.ModError):
            fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv])

    def test_library_errors_leave_the_cache_usable(self):
        q, k, v = inputs(36)
        with self.assertRaises(fa.FlexAttentionError):
            fa.flex_attention(q, k, v, score_mod="score + ")
        self.assertEqual(fa.flex_attention(q, k, v).shape, q.shape)


@requires_library
class CacheTests(unittest.TestCase):
    def test_new_parameter_values_reuse_the_prepared_object(self):
        fa.clear_cache()
        q, k, v = inputs(40)
        for cap in (3.0, 4.0, 5.0):
            fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: cap * fa.tanh(s / cap))
        # one prepared object per distinct parameter value (the key holds the values), same text
        self.assertEqual(fa.cache_info()["size"], 3)
        fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: 3.0 * fa.tanh(s / 3.0))
        self.assertEqual(fa.cache_info()["size"], 4)

    def test_float_tables_are_passed_per_call(self):
        fa.clear_cache()
        q, k, v = inputs(41)
        bias = np.zeros((4, 90), np.float32)
        mod = lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52]  # noqa: E731
        for step in range(3):
            bias[:] = randn(rng(step), 4, 90)
            out = fa.flex_attention(q, k, v, score_mod=mod)
            expected, _ = reference(q, k, v, mod)
            self.assertLess(relative_error(out, expected), TOLERANCE)
        self.assertEqual(fa.cache_info()["size"], 1)

    def test_int_tables_are_keyed_by_content(self):
        fa.clear_cache()
        q, k, v = inputs(42, sq=40, skv=40)
        doc = np.zeros(40, np.int32)
        mod = lambda s, b, h, qi, kv: fa.where(doc[qi] == doc[kv], s, s - 100.0)  # noqa: E731
        for boundary in (10, 25):
            doc[:] = (np.arange(40) >= boundary)
            out = fa.flex_attention(q, k, v, score_mod=mod)
            expected, _ = reference(q, k, v, mod)
            self.assertLess(relative_error(out, expected), TOLERANCE)
        self.assertEqual(fa.cache_info()["size"], 2)

    def test_capacity(self):
        fa.clear_cache()
        q, k, v = inputs(43, batch=1, hq=1, hkv=1, sq=4, skv=4, d=8)
        for i in range(70):
            fa.flex_attention(q, k, v, scale=0.1 + i * 0.01)
        self.assertEqual(fa.cache_info()["size"], 64)
        fa.clear_cache()
        self.assertEqual(fa.cache_info()["size"], 0)


if __name__ == "__main__":
    unittest.main()
