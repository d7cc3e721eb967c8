"""torch tensors: forward, autograd (Q, K, V and captured tables), caching, decode; CUDA where a GPU exists.

Skipped where torch is not installed; the CUDA classes are skipped without a GPU.
"""

import math
import unittest


from _support import fa, relative_error, requires_cuda, requires_library
from _support import requires_torch, torch

TOLERANCE = 2e-5


def torch_reference(q, k, v, score_mod=None, mask_mod=None, scale=None):
    """float64 attention in torch (differentiable): out [B, Hq, Sq, Dv], lse [B, Hq, Sq]."""
    q, k, v = q.double(), k.double(), v.double()
    batch, hq, sq, d = q.shape
    group = hq // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    device = q.device
    b = torch.arange(batch, device=device).view(-1, 1, 1, 1)
    h = torch.arange(hq, device=device).view(1, -1, 1, 1)
    qi = torch.arange(sq, device=device).view(1, 1, -1, 1)
    ki = torch.arange(k.shape[2], device=device).view(1, 1, 1, -1)
    if score_mod is not None:
        s = score_mod(s, b, h, qi, ki).double().expand(s.shape)
    if mask_mod is not None:
        s = s.masked_fill(~mask_mod(b, h, qi, ki).expand(s.shape), -math.inf)
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


def rel(actual, expected):
    return relative_error(actual.detach().double().cpu().numpy(), expected.detach().double().cpu().numpy())


def make(batch=2, hq=4, hkv=4, sq=37, skv=53, d=32, dtype=None, device="cpu", requires_grad=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dtype = dtype or torch.float32
    shapes = [(batch, hq, sq, d), (batch, hkv, skv, d), (batch, hkv, skv, d)]
    return [torch.randn(*s, generator=generator).to(device=device, dtype=dtype).requires_grad_(requires_grad)
            for s in shapes]


class _Checks:
    device = "cpu"

    def forward_check(self, q, k, v, score_mod=None, mask_mod=None, tolerance=TOLERANCE, enable_gqa=False,
                      scale=None):
        block_mask = None
        if mask_mod is not None:
            block_mask = fa.create_block_mask(mask_mod, None, None, q.shape[2], k.shape[2], device=self.device)
        out, lse = fa.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, return_lse=True,
                                     enable_gqa=enable_gqa, scale=scale)
        expected_out, expected_lse = torch_reference(q, k, v, score_mod, mask_mod, scale)
        self.assertIsInstance(out, torch.Tensor)
        self.assertEqual(out.device, q.device)
        self.assertEqual(out.dtype, q.dtype)
        self.assertEqual(lse.dtype, torch.float32)
        self.assertEqual(tuple(out.shape), tuple(q.shape[:3]) + (v.shape[3],))
        self.assertLess(rel(out, expected_out), tolerance)
        self.assertLess(rel(lse, expected_lse), tolerance)
        return out, lse

    def gradient_check(self, q, k, v, score_mod=None, mask_mod=None, tables=(), tolerance=1e-4, enable_gqa=False,
                       deterministic=True):
        block_mask = None
        if mask_mod is not None:
            block_mask = fa.create_block_mask(mask_mod, None, None, q.shape[2], k.shape[2], device=self.device)
        out = fa.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=enable_gqa,
                                deterministic=deterministic)
        self.assertIsNotNone(out.grad_fn)
        grad_out = torch.randn_like(out)
        inputs = [t for t in (q, k, v, *tables) if t.requires_grad]
        grads = torch.autograd.grad(out, inputs, grad_out)
        expected_out, _ = torch_reference(q, k, v, score_mod, mask_mod)
        expected = torch.autograd.grad(expected_out, inputs, grad_out.double())
        for actual, wanted, tensor in zip(grads, expected, inputs):
            self.assertEqual(actual.shape, tensor.shape)
            self.assertEqual(actual.dtype, tensor.dtype)
            self.assertLess(rel(actual, wanted), tolerance)


@requires_torch
@requires_library
class TorchCPUTests(_Checks, unittest.TestCase):
    def test_forward(self):
        self.forward_check(*make())
        self.forward_check(*make(sq=1, skv=70, d=80, seed=1), scale=0.2)
        self.forward_check(*make(hq=6, hkv=2, seed=2), enable_gqa=True)

    def test_low_precision(self):
        for dtype in (torch.float16, torch.bfloat16):
            self.forward_check(*make(dtype=dtype, seed=3), mask_mod=lambda b, h, q, kv: q >= kv,
                               tolerance=2e-2 if dtype == torch.bfloat16 else 5e-3)

    def test_strided_bshd_inputs(self):
        generator = torch.Generator().manual_seed(4)
        q = torch.randn(2, 37, 4, 32, generator=generator).transpose(1, 2)
        k = torch.randn(2, 53, 4, 32, generator=generator).transpose(1, 2)
        v = torch.randn(2, 53, 4, 32, generator=generator).transpose(1, 2)
        self.assertFalse(q.is_contiguous())
        self.forward_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + (qi - kv) * 0.01)

    def test_mods(self):
        q, k, v = make(sq=64, skv=64, seed=5)
        doc = torch.tensor([0] * 20 + [1] * 30 + [2] * 14)
        self.forward_check(q, k, v, mask_mod=lambda b, h, qi, kv: (doc[qi] == doc[kv]) & (qi >= kv))
        cap = 4.0
        self.forward_check(q * 3, k, v, score_mod=lambda s, b, h, qi, kv: cap * torch.tanh(s / cap))
        self.forward_check(q, k, v, score_mod=lambda s, b, h, qi, kv: torch.where(qi >= kv, s, s - 2.0),
                           mask_mod=lambda b, h, qi, kv: (qi - kv).abs() < 20)

    def test_gradients_qkv(self):
        self.gradient_check(*make(requires_grad=True, seed=6))
        self.gradient_check(*make(requires_grad=True, seed=7, sq=64, skv=64),
                            mask_mod=lambda b, h, qi, kv: qi >= kv)
        self.gradient_check(*make(requires_grad=True, seed=8, hq=4, hkv=2), enable_gqa=True)
        q, k, v = make(seed=9)
        q.requires_grad_(True)  # only Q
        self.gradient_check(q, k, v)

    def test_gradients_of_tables(self):
        q, k, v = make(requires_grad=True, seed=10, sq=37, skv=53)
        bias = (torch.randn(4, 37 + 53 - 1) * 0.5).requires_grad_(True)
        self.gradient_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52], tables=(bias,))
        slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625], requires_grad=True)
        self.gradient_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + slopes[h] * (kv - qi),
                            tables=(slopes,))
        half_bias = (torch.randn(4, 37 + 53 - 1) * 0.5).to(torch.bfloat16).requires_grad_(True)
        self.gradient_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + half_bias[h, qi - kv + 52],
                            tables=(half_bias,), tolerance=2e-2)  # both sides rounded to bf16: 0.6-1.0% apart
        temperature = torch.tensor(1.5, requires_grad=True)  # a 0-d learnable scalar
        self.gradient_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s * temperature, tables=(temperature,))

    def test_sum_backward_and_grad_accumulation(self):
        q, k, v = make(requires_grad=True, seed=11)
        bias = torch.zeros(4, 37 + 53 - 1, requires_grad=True)
        out = fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52])
        out.sum().backward()  # expanded (zero-stride) output gradient
        for t in (q, k, v, bias):
            self.assertIsNotNone(t.grad)
            self.assertTrue(torch.isfinite(t.grad).all())

    def test_learnable_bias_reuses_the_prepared_object(self):
        fa.clear_cache()
        q, k, v = make(seed=12)
        bias = torch.zeros(4, 37 + 53 - 1, requires_grad=True)
        optimizer = torch.optim.SGD([bias], lr=0.5)
        mod = lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52]  # noqa: E731
        for _ in range(3):
            optimizer.zero_grad()
            out = fa.flex_attention(q, k, v, score_mod=mod)
            expected, _ = torch_reference(q, k, v, mod)
            self.assertLess(rel(out, expected), TOLERANCE)
            (out * out).sum().backward()
            optimizer.step()
        self.assertEqual(fa.cache_info()["size"], 1)

    def test_int_table_changes_in_place(self):
        fa.clear_cache()
        q, k, v = make(seed=13, sq=40, skv=40)
        doc = torch.zeros(40, dtype=torch.int32)
        mod = lambda s, b, h, qi, kv: torch.where(doc[qi] == doc[kv], s, s - 50.0)  # noqa: E731
        out1 = fa.flex_attention(q, k, v, score_mod=mod)
        doc[20:] = 1  # bumps the tensor's version: a new prepared object
        out2 = fa.flex_attention(q, k, v, score_mod=mod)
        expected, _ = torch_reference(q, k, v, mod)
        self.assertLess(rel(out2, expected), TOLERANCE)
        self.assertGreater(rel(out1, out2), 1e-3)

    def test_no_grad_and_lse(self):
        q, k, v = make(requires_grad=True, seed=14)
        with torch.no_grad():
            out = fa.flex_attention(q, k, v)
        self.assertIsNone(out.grad_fn)
        out, lse = fa.flex_attention(q, k, v, return_lse=True)
        self.assertFalse(lse.requires_grad)

    def test_cpu_is_deterministic(self):
        q, k, v = make(requires_grad=True, seed=16, sq=64, skv=64)
        bias = torch.randn(4, 127, requires_grad=True)
        runs = []
        for _ in range(2):
            out = fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 63])
            runs.append([out] + list(torch.autograd.grad(out, (q, k, v, bias), torch.ones_like(out))))
        for first, second in zip(*runs):
            self.assertTrue(torch.equal(first, second))

    def test_any_order_gradients_change_nothing_on_the_cpu(self):
        q, k, v = make(requires_grad=True, seed=17, sq=48, skv=48)
        bias = torch.randn(4, 95, requires_grad=True)
        runs = []
        for deterministic in (True, False):
            out = fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 47],
                                    deterministic=deterministic)
            runs.append([out] + list(torch.autograd.grad(out, (q, k, v, bias), torch.ones_like(out))))
        for first, second in zip(*runs):
            self.assertTrue(torch.equal(first, second))

    def test_errors(self):
        q, k, v = make()
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q.double(), k.double(), v.double())
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k.half(), v)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k.numpy(), v)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q[0], k, v)
        with self.assertRaises(fa.TraceError):
            fa.flex_attention(q, k, v, score_mod=lambda s, b, h, qi, kv: torch.sin(s))

    def test_agrees_with_torch_flex_attention(self):
        """The drop-in claim, on the same callables and tensors: torch's own eager flex_attention (forward; torch
        has no CPU backward) gives the same outputs and log-sum-exps."""
        from torch.nn.attention import flex_attention as torch_flex

        q, k, v = make(batch=2, hq=4, hkv=2, sq=200, skv=300, d=64, seed=41)
        slopes = torch.tensor([2.0 ** (-8 * (i + 1) / 4) for i in range(4)])
        cap = 20.0
        cases = {
            "causal": (None, lambda b, h, qi, kv: qi >= kv),
            "window": (None, lambda b, h, qi, kv: (qi >= kv) & (qi - kv < 64)),
            "alibi": (lambda s, b, h, qi, kv: s + slopes[h] * (kv - qi), None),
            "soft-cap": (lambda s, b, h, qi, kv: cap * torch.tanh(s / cap), lambda b, h, qi, kv: qi >= kv),
        }
        for name, (score_mod, mask_mod) in cases.items():
            with self.subTest(name):
                ours_mask = torch_mask = None
                if mask_mod is not None:
                    ours_mask = fa.create_block_mask(mask_mod, None, None, 200, 300)
                    torch_mask = torch_flex.create_block_mask(mask_mod, None, None, 200, 300, device="cpu")
                out, lse = fa.flex_attention(q, k, v, score_mod=score_mod, block_mask=ours_mask, enable_gqa=True,
                                             return_lse=True)
                expected, expected_lse = torch_flex.flex_attention(
                    q, k, v, score_mod=score_mod, block_mask=torch_mask, enable_gqa=True, return_lse=True)
                self.assertLess(rel(out, expected), 1e-5)
                self.assertLess(rel(lse, expected_lse), 1e-6)

    def test_freed_storage_is_refused(self):
        q, k, v = make()
        freed = k.clone()
        freed.untyped_storage().resize_(0)  # what FSDP does to a parameter it has sharded away
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, freed, v)
        self.assertIn("freed or resized", str(caught.exception))
        shrunk = v.clone()
        shrunk.untyped_storage().resize_(shrunk.untyped_storage().nbytes() - 4)
        with self.assertRaises(fa.InvalidArgumentError):
            fa.flex_attention(q, k, shrunk)
        torch.testing.assert_close(fa.flex_attention(q, k, v), fa.flex_attention(q, k, v.clone()), rtol=0, atol=0)

    def test_decode(self):
        generator = torch.Generator().manual_seed(15)
        batch, capacity, hq, hkv, d = 2, 64, 4, 2, 32
        q = torch.randn(batch, 1, hq, d, generator=generator)
        k_cache = torch.randn(batch, capacity, hkv, d, generator=generator)
        v_cache = torch.randn(batch, capacity, hkv, d, generator=generator)
        k_new = torch.randn(batch, 1, hkv, d, generator=generator)
        v_new = torch.randn(batch, 1, hkv, d, generator=generator)
        lengths = torch.tensor([10, 40], dtype=torch.int32)
        expected_k = k_cache.clone()
        expected_v = v_cache.clone()
        outs = []
        for b in range(batch):
            n = int(lengths[b])
            expected_k[b, n] = k_new[b, 0]
            expected_v[b, n] = v_new[b, 0]
            out, _ = torch_reference(q[b:b + 1].transpose(1, 2), expected_k[b:b + 1, :n + 1].transpose(1, 2),
                                     expected_v[b:b + 1, :n + 1].transpose(1, 2))
            outs.append(out.transpose(1, 2))
        out, lse = fa.flash_attn_with_kvcache(q, k_cache, v_cache, k_new, v_new, cache_seqlens=lengths,
                                              causal=True, return_softmax_lse=True)
        self.assertTrue(out.is_contiguous())
        self.assertEqual(tuple(out.shape), (batch, 1, hq, d))
        self.assertLess(rel(out, torch.cat(outs)), TOLERANCE)
        self.assertTrue(torch.equal(k_cache, expected_k))
        self.assertTrue(torch.equal(v_cache, expected_v))
        self.assertEqual(lengths.tolist(), [10, 40])


@requires_torch
@requires_library
@requires_cuda
class TorchCUDATests(_Checks, unittest.TestCase):
    device = "cuda"

    def test_forward(self):
        for dtype, tolerance in ((torch.float32, 1e-3), (torch.float16, 5e-3), (torch.bfloat16, 2e-2)):
            self.forward_check(*make(dtype=dtype, device="cuda", seed=20), tolerance=tolerance)
            self.forward_check(*make(dtype=dtype, device="cuda", seed=21, hq=8, hkv=2, d=64), enable_gqa=True,
                               mask_mod=lambda b, h, q, kv: q >= kv, tolerance=tolerance)

    def test_strided_and_mods(self):
        q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in make(device="cuda", seed=22))
        bias = torch.randn(4, 37 + 53 - 1, device="cuda")
        self.forward_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52],
                           mask_mod=lambda b, h, qi, kv: (qi - kv).abs() < 30, tolerance=1e-3)

    def test_gradients(self):
        q, k, v = make(device="cuda", requires_grad=True, seed=23, d=64)
        bias = torch.zeros(4, 37 + 53 - 1, device="cuda", requires_grad=True)
        self.gradient_check(q, k, v, score_mod=lambda s, b, h, qi, kv: s + bias[h, qi - kv + 52], tables=(bias,),
                            tolerance=1e-3)

    def test_any_order_gradients(self):
        # Above D = 128 an H100 then adds dQ in any order; dK, dV and the table's gradient keep their bits.
        q, k, v = make(device="cuda", dtype=torch.bfloat16, requires_grad=True, seed=25, hq=4, hkv=2, sq=200,
                       skv=200, d=256)
        bias = (torch.randn(4, 399, device="cuda") * 0.3).requires_grad_(True)
        score_mod = lambda s, b, h, qi, kv: s + bias[h, qi - kv + 199]
        causal = lambda b, h, qi, kv: qi >= kv
        self.gradient_check(q, k, v, score_mod=score_mod, mask_mod=causal, tables=(bias,), tolerance=4e-2,
                            enable_gqa=True, deterministic=False)
        block_mask = fa.create_block_mask(causal, None, None, 200, 200, device="cuda")
        grad_out = torch.randn(2, 4, 200, 256, device="cuda", dtype=torch.bfloat16)
        runs = []
        for _ in range(2):
            out = fa.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=True,
                                    deterministic=False)
            runs.append(torch.autograd.grad(out, (k, v, bias), grad_out))
        for first, second in zip(*runs):
            self.assertTrue(torch.equal(first, second))

    def test_runs_on_the_current_stream(self):
        q, k, v = make(device="cuda", seed=24)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fa.flex_attention(q, k, v)
            out2 = out * 1.0  # torch work after ours on the same stream sees the finished output
        torch.cuda.current_stream().wait_stream(stream)
        expected, _ = torch_reference(q, k, v)
        self.assertLess(rel(out2, expected), 1e-3)

    def test_device_mismatch(self):
        q, k, v = make(device="cuda")
        with self.assertRaises(fa.InvalidArgumentError) as caught:
            fa.flex_attention(q, k.cpu(), v)
        self.assertIn("device", str(caught.exception))

    def test_decode_paged(self):
        generator = torch.Generator().manual_seed(25)
        batch, page, pages, hq, hkv, d = 2, 16, 8, 8, 2, 64
        q = torch.randn(batch, 1, hq, d, generator=generator).cuda().half()
        k_pages = torch.randn(pages, page, hkv, d, generator=generator).cuda().half()
        v_pages = torch.randn(pages, page, hkv, d, generator=generator).cuda().half()
        table = torch.tensor([[3, 1, 6, 0], [2, 7, 5, 4]], dtype=torch.int32, device="cuda")
        lengths = torch.tensor([20, 50], dtype=torch.int32)
        out = fa.flash_attn_with_kvcache(q, k_pages, v_pages, cache_seqlens=lengths, block_table=table)
        for b in range(batch):
            n = int(lengths[b])
            keys = torch.cat([k_pages[int(p)] for p in table[b]])[:n].unsqueeze(0).transpose(1, 2)
            values = torch.cat([v_pages[int(p)] for p in table[b]])[:n].unsqueeze(0).transpose(1, 2)
            expected, _ = torch_reference(q[b:b + 1].transpose(1, 2), keys, values)
            self.assertLess(rel(out[b:b + 1], expected.transpose(1, 2)), 5e-3)


if __name__ == "__main__":
    unittest.main()
