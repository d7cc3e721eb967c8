"""flash_attn_with_kvcache on NumPy arrays: contiguous and paged caches, appends, windows, mods (needs the library)."""

import unittest

import numpy as np

from _support import fa, randn, reference, relative_error, requires_library, rng

TOLERANCE = 2e-5


def decode_reference(q, k_cache, v_cache, lengths, k=None, v=None, causal=False, window=(-1, -1), softcap=0.0,
                     score_mod=None, mask_mod=None, scale=None, alibi=None):
    """float64 decode on a contiguous BSHD cache (appending k, v first on copies): out BSHD and lse."""
    k_cache, v_cache = k_cache.astype(np.float64), v_cache.astype(np.float64)
    batch, sq, hq, d = q.shape
    lengths = np.broadcast_to(np.asarray(lengths), (batch,))
    sn = 0 if k is None else k.shape[1]
    outs, lses = [], []
    for b in range(batch):
        start = int(lengths[b])
        if k is not None:
            k_cache[b, start:start + sn] = k[b]
            v_cache[b, start:start + sn] = v[b]
        total = start + sn
        keys = k_cache[b:b + 1, :total].transpose(0, 2, 1, 3)
        values = v_cache[b:b + 1, :total].transpose(0, 2, 1, 3)
        query = q[b:b + 1].transpose(0, 2, 1, 3)
        qpos = (total - sq + np.arange(sq)).reshape(1, 1, -1, 1)
        kpos = np.arange(total).reshape(1, 1, 1, -1)
        bgrid = np.full((1, 1, 1, 1), b)
        hgrid = np.arange(hq).reshape(1, -1, 1, 1)

        def score(s, bb, h, qi, ki):
            if softcap:
                s = softcap * np.tanh(s / softcap)
            if alibi is not None:
                s = s - alibi[h] * np.abs(qi - ki)
            if score_mod is not None:
                s = score_mod(s, bb, h, qi, ki)
            return s

        def mask(bb, h, qi, ki):
            keep = np.ones(np.broadcast_shapes(qi.shape, ki.shape), dtype=bool)
            if causal:
                keep &= ki <= qi
            if window[0] >= 0:
                keep &= qi - ki <= window[0]
            if window[1] >= 0 and not causal:
                keep &= ki - qi <= window[1]
            if mask_mod is not None:
                keep &= np.asarray(mask_mod(bb, h, qi, ki), dtype=bool)
            return keep

        out, lse = reference(query, keys, values, score, mask, scale, positions=(bgrid, hgrid, qpos, kpos))
        outs.append(out.transpose(0, 2, 1, 3))
        lses.append(lse)
    return np.concatenate(outs), np.concatenate(lses), k_cache, v_cache


def to_paged(cache, page_size, generator):
    """A paged copy of a contiguous [B, S, H, D] cache and its block table (pages in a shuffled order)."""
    batch, capacity, heads, d = cache.shape
    pages_per_sequence = -(-capacity // page_size)
    total_pages = batch * pages_per_sequence + 3
    order = generator.permutation(total_pages)[:batch * pages_per_sequence]
    table = order.reshape(batch, pages_per_sequence).astype(np.int32)
    paged = np.zeros((total_pages, page_size, heads, d), dtype=cache.dtype)
    for b in range(batch):
        for p in range(pages_per_sequence):
            chunk = cache[b, p * page_size:(p + 1) * page_size]
            paged[table[b, p], :chunk.shape[0]] = chunk
    return paged, table


def from_paged(paged, table, capacity):
    batch = table.shape[0]
    return np.stack([np.concatenate([paged[table[b, p]] for p in range(table.shape[1])])[:capacity]
                     for b in range(batch)])


@requires_library
class DecodeTests(unittest.TestCase):
    def setUp(self):
        self.g = rng(7)

    def make(self, batch=3, capacity=96, hq=4, hkv=2, d=32, sq=1, sn=0, dtype=np.float32):
        g = self.g
        q = randn(g, batch, sq, hq, d, dtype=dtype)
        k_cache = randn(g, batch, capacity, hkv, d, dtype=dtype)
        v_cache = randn(g, batch, capacity, hkv, d, dtype=dtype)
        k = randn(g, batch, sn, hkv, d, dtype=dtype) if sn else None
        v = randn(g, batch, sn, hkv, d, dtype=dtype) if sn else None
        return q, k_cache, v_cache, k, v

    def check(self, q, k_cache, v_cache, lengths, k=None, v=None, tolerance=TOLERANCE, reference_mods=None,
              **options):
        reference_options = {key: value for key, value in options.items() if key in (
            "causal", "softcap", "score_mod", "mask_mod", "alibi")}
        reference_options.update(reference_mods or {})
        expected_out, expected_lse, expected_k, expected_v = decode_reference(
            q, k_cache, v_cache, lengths, k, v, **reference_options,
            window=options.get("window_size", (-1, -1)), scale=options.get("softmax_scale"))
        alibi = options.pop("alibi", None)
        out, lse = fa.flash_attn_with_kvcache(q, k_cache, v_cache, k, v, cache_seqlens=lengths,
                                              return_softmax_lse=True, alibi_slopes=alibi, **options)
        self.assertEqual(out.shape, q.shape[:3] + (v_cache.shape[3],))
        self.assertTrue(out.flags["C_CONTIGUOUS"])
        self.assertLess(relative_error(out, expected_out), tolerance)
        self.assertLess(relative_error(lse, expected_lse), tolerance)
        if k is not None:
            np.testing.assert_array_equal(k_cache, expected_k.astype(k_cache.dtype))
            np.testing.assert_array_equal(v_cache, expected_v.astype(v_cache.dtype))
        return out

    def test_contiguous(self):
        q, k_cache, v_cache, _, _ = self.make()
        lengths = np.array([5, 96, 40], dtype=np.int32)
        self.check(q, k_cache, v_cache, lengths)
        self.check(q, k_cache, v_cache, 17)

    def test_contiguous_append_causal(self):
        q, k_cache, v_cache, k, v = self.make(sq=3, sn=3)
        lengths = np.array([0, 50, 93], dtype=np.int32)
        before = lengths.copy()
        self.check(q, k_cache, v_cache, lengths, k, v, causal=True)
        np.testing.assert_array_equal(lengths, before)  # cache_seqlens is not modified

    def test_window_softcap_alibi_and_mods(self):
        q, k_cache, v_cache, k, v = self.make(sq=2, sn=2, d=80)
        lengths = np.array([30, 60, 10], dtype=np.int64)
        slopes = np.array([0.5, 0.25, 0.125, 0.0625], dtype=np.float32)
        self.check(q, k_cache, v_cache, lengths, k.copy(), v.copy(), causal=True, window_size=(8, -1),
                   softcap=3.0, softmax_scale=0.2)
        q2, k_cache2, v_cache2, _, _ = self.make(sq=2, sn=0)
        self.check(q2, k_cache2, v_cache2, lengths, window_size=(5, 3), alibi=slopes)
        self.check(q2, k_cache2, v_cache2, lengths, score_mod=lambda s, b, h, qi, kv: s * 0.5 + (h == 1) * 0.25,
                   mask_mod=lambda b, h, qi, kv: (qi - kv) % 2 == 0, softcap=2.0)
        self.check(q2, k_cache2, v_cache2, lengths, score_mod="score * 0.5", mask_mod="let d = q - kv; d <= 20",
                   softcap=2.0, window_size=(12, 12),
                   reference_mods={"score_mod": lambda s, b, h, qi, kv: s * 0.5,
                                   "mask_mod": lambda b, h, qi, kv: qi - kv <= 20})

    def test_paged_append(self):
        page_size = 16
        q, k_cache, v_cache, k, v = self.make(sq=1, sn=2, capacity=80)
        lengths = np.array([0, 33, 70], dtype=np.int32)
        paged_k, table = to_paged(k_cache, page_size, self.g)
        paged_v = np.zeros_like(paged_k)  # the same pages as the keys
        for b in range(table.shape[0]):
            for p in range(table.shape[1]):
                chunk = v_cache[b, p * page_size:(p + 1) * page_size]
                paged_v[table[b, p], :chunk.shape[0]] = chunk
        expected_out, expected_lse, expected_k, expected_v = decode_reference(
            q, k_cache, v_cache, lengths, k, v, causal=True)
        out, lse = fa.flash_attn_with_kvcache(q, paged_k, paged_v, k, v, cache_seqlens=lengths,
                                              block_table=table, causal=True, return_softmax_lse=True)
        self.assertLess(relative_error(out, expected_out), TOLERANCE)
        self.assertLess(relative_error(lse, expected_lse), TOLERANCE)
        np.testing.assert_array_equal(from_paged(paged_k, table, 80), expected_k.astype(np.float32))
        np.testing.assert_array_equal(from_paged(paged_v, table, 80), expected_v.astype(np.float32))

    def test_float16(self):
        q, k_cache, v_cache, k, v = self.make(sq=1, sn=1, dtype=np.float16)
        self.check(q, k_cache, v_cache, np.array([3, 20, 50], np.int32), k, v, tolerance=5e-3)

    def test_bad_inputs(self):
        q, k_cache, v_cache, k, v = self.make(sq=1, sn=1)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flash_attn_with_kvcache(q, k_cache, v_cache, k, None, cache_seqlens=3)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=np.array([1, 2], np.int32))
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flash_attn_with_kvcache(q[0], k_cache, v_cache, cache_seqlens=3)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=3, rotary_cos=np.zeros(3))
        with self.assertRaises(fa.FlexAttentionError):
            # appending past the cache's capacity: the library refuses
            fa.flash_attn_with_kvcache(q, k_cache, v_cache, k, v, cache_seqlens=96)


if __name__ == "__main__":
    unittest.main()
