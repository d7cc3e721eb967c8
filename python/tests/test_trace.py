"""Tracing Python mods into the textual form (no library needed)."""

import functools
import unittest

import numpy as np

from _support import evaluate, fa, requires_torch, torch
from flexattention_swift import _symbolic as S
from flexattention_swift import _trace as T

MODULE_WINDOW = 64


def text(mod, kind="score_mod"):
    return fa.mod_text(mod, kind)


def helper_distance(q, kv):
    return q - kv


class TextTests(unittest.TestCase):
    def test_identity_and_simple(self):
        self.assertEqual(text(lambda score, b, h, q, kv: score), "score")
        self.assertEqual(text(lambda score, b, h, q, kv: score * 2), "score * 2.0")
        self.assertEqual(text(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, "mask_mod"), "q >= kv")

    def test_captured_numbers_become_parameters(self):
        window = 128
        mod = fa.trace_mod(lambda b, h, q, kv: (q >= kv) & (q - kv < window), "mask_mod")
        self.assertEqual(mod.text, "q >= kv && q - kv < window")
        self.assertEqual([(p.name, p.type, p.value) for p in mod.params], [("window", "int", 128)])
        cap = 30.0
        mod = fa.trace_mod(lambda score, b, h, q, kv: cap * fa.tanh(score / cap))
        self.assertEqual(mod.text, "cap * tanh(score / cap)")
        self.assertEqual([(p.name, p.type, p.value) for p in mod.params], [("cap", "float", 30.0)])

    def test_module_globals_and_helpers(self):
        mod = fa.trace_mod(lambda b, h, q, kv: helper_distance(q, kv) < MODULE_WINDOW, "mask_mod")
        self.assertEqual(mod.text, "q - kv < MODULE_WINDOW")
        self.assertEqual(mod.params[0].value, 64)

    def test_nested_closures_and_partial(self):
        def make(w):
            def inner(b, h, q, kv):
                return abs(q - kv) <= w
            return inner

        self.assertEqual(text(make(5), "mask_mod"), "abs(q - kv) <= w")

        def banded(b, h, q, kv, width):
            return q - kv < width

        mod = fa.trace_mod(functools.partial(banded, width=9), "mask_mod")
        self.assertEqual(mod.text, "q - kv < width")
        self.assertEqual(mod.params[0].value, 9)

    def test_two_sites_with_one_name(self):
        def make(w):
            return lambda q, kv: q - kv < w

        first, second = make(3), make(4)
        mod = fa.trace_mod(lambda b, h, q, kv: first(q, kv) & second(q, kv), "mask_mod")
        self.assertEqual(mod.text, "q - kv < w && q - kv < w_1")
        self.assertEqual([p.value for p in mod.params], [3, 4])

    def test_reserved_capture_names_are_renamed(self):
        exp = 2.0  # noqa: F841 - a capture named like a function
        mod = fa.trace_mod(lambda score, b, h, q, kv: score * exp)
        self.assertEqual(mod.text, "score * exp_")

    def test_tables(self):
        bias = np.zeros((4, 15), np.float32)
        mod = fa.trace_mod(lambda score, b, h, q, kv: score + bias[h, q - kv + 7])
        self.assertEqual(mod.text, "score + bias[h, q - kv + 7]")
        self.assertEqual(mod.tables[0].name, "bias")
        self.assertEqual(mod.tables[0].kind, "float")
        doc = np.array([0, 0, 1, 1, 2], np.int64)
        mod = fa.trace_mod(lambda b, h, q, kv: doc[q] == doc[kv], "mask_mod")
        self.assertEqual(mod.text, "doc[q] == doc[kv]")
        self.assertEqual(mod.tables[0].kind, "int")
        # chained indexing, negative literal indices and table() names
        slopes = fa.table(np.ones((2, 3), np.float32), name="slope")
        mod = fa.trace_mod(lambda score, b, h, q, kv: score * slopes[b][-1])
        self.assertEqual(mod.text, "score * slope[b, 2]")
        flags = np.array([True, False, True])
        self.assertEqual(text(lambda b, h, q, kv: flags[kv], "mask_mod"), "flags[kv] != 0")

    def test_int_float_promotion(self):
        self.assertEqual(text(lambda s, b, h, q, kv: s - 0.1 * abs(q - kv)), "score - 0.1 * float(abs(q - kv))")
        self.assertEqual(text(lambda s, b, h, q, kv: s + (q - kv) / 2), "score + float(q - kv) / 2.0")
        self.assertEqual(text(lambda s, b, h, q, kv: q - kv), "float(q - kv)")
        self.assertEqual(text(lambda s, b, h, q, kv: s + (q >= kv)), "score + float(where(q >= kv, 1, 0))")

    def test_operators(self):
        self.assertEqual(text(lambda s, b, h, q, kv: -(s + 1) * -3), "-(score + 1.0) * -3.0")
        self.assertEqual(text(lambda s, b, h, q, kv: s ** 2), "score * score")
        self.assertEqual(text(lambda s, b, h, q, kv: s ** -1), "1.0 / score")
        self.assertEqual(text(lambda s, b, h, q, kv: s ** 0.5), "sqrt(score)")
        self.assertEqual(text(lambda b, h, q, kv: (q // 4 == kv // 4) | ~(q % 2 == 0), "mask_mod"),
                         "q / 4 == kv / 4 || !q % 2 == 0")
        self.assertEqual(text(lambda b, h, q, kv: (q < kv) ^ (q > 3), "mask_mod"), "(q < kv) != (q > 3)")
        self.assertEqual(text(lambda s, b, h, q, kv: fa.where(q >= kv, s, -float("inf"))),
                         "where(q >= kv, score, (-1.0 / 0.0))")
        self.assertEqual(text(lambda s, b, h, q, kv: fa.clamp(s, -5, 5)), "clamp(score, -5.0, 5.0)")
        self.assertEqual(text(lambda s, b, h, q, kv: fa.minimum(s, q)), "min(score, float(q))")
        self.assertEqual(text(lambda s, b, h, q, kv: s * fa.q_len), "score * float(q_len)")

    def test_floor_division_and_modulo_match_python(self):
        """Python's // and % (floor) are the library's Int / and %, checked on negative operands."""
        q = np.arange(-20, 21).reshape(-1, 1)
        kv = np.arange(-7, 8).reshape(1, -1)
        kv = np.where(kv == 0, 1, kv)
        for mod, python in [
            (lambda b, h, q, kv: q // kv, lambda q, kv: q // kv),
            (lambda b, h, q, kv: q % kv, lambda q, kv: q % kv),
            (lambda b, h, q, kv: (q - 10) // 3, lambda q, kv: (q - 10) // 3),
            (lambda b, h, q, kv: (q - 10) % -3, lambda q, kv: (q - 10) % -3),
            (lambda b, h, q, kv: -q // kv + q % 7, lambda q, kv: -q // kv + q % 7),
        ]:
            expr = T.trace_expr(lambda s, b, h, q, kv: mod(b, h, q, kv), "score_mod", T.TraceContext())
            int_expr = expr.args[0]  # the traced Int under float()
            actual = np.broadcast_to(evaluate(int_expr, {"q": q, "kv": kv, "b": 0, "h": 0}), (q.size, kv.size))
            expected = np.array([[python(int(a), int(c)) for c in kv[0]] for a in q[:, 0]])
            np.testing.assert_array_equal(actual, expected)

    def test_float_floor_division_and_fmod(self):
        s = np.linspace(-7.5, 7.5, 31)
        expr = T.trace_expr(lambda score, b, h, q, kv: score // 2.5 + score % 2.5, "score_mod", T.TraceContext())
        np.testing.assert_allclose(evaluate(expr, {"score": s}), s // 2.5 + s % 2.5)
        q = np.arange(-9, 10)
        expr = T.trace_expr(lambda score, b, h, q, kv: S.fmod(q, 4), "score_mod", T.TraceContext())
        np.testing.assert_array_equal(evaluate(expr.args[0], {"q": q}), np.fmod(q, 4))
        expr = T.trace_expr(lambda score, b, h, q, kv: S.trunc_div(q, -4), "score_mod", T.TraceContext())
        np.testing.assert_array_equal(evaluate(expr.args[0], {"q": q}), np.trunc(q / -4).astype(int))

    def test_shared_subexpressions_and_deep_chains_bind(self):
        def deep(s, b, h, q, kv):
            x = s
            for i in range(60):
                x = x * 1.5 + i
            return x
        printed = text(deep)
        self.assertTrue(printed.startswith("let x0 = "))
        self.assertLess(printed.count("(") - printed.count("(1.0"), 200)
        s = np.linspace(-1, 1, 5)
        expr = T.trace_expr(deep, "score_mod", T.TraceContext())
        expected = s.copy()
        for i in range(60):
            expected = expected * 1.5 + i
        np.testing.assert_allclose(evaluate(expr, {"score": s}), expected)

    def test_concrete_parameters_allow_python_control_flow(self):
        window = 0

        def mask(b, h, q, kv):
            if window > 0:  # a captured number: its value decides
                return q - kv < window
            return q >= kv
        self.assertEqual(text(mask, "mask_mod"), "q >= kv")

    def test_numpy_ufuncs(self):
        self.assertEqual(text(lambda s, b, h, q, kv: np.tanh(s) + np.maximum(s, 0)),
                         "tanh(score) + max(score, 0.0)")
        self.assertEqual(text(lambda s, b, h, q, kv: np.where(q >= kv, s, 0.0)), "where(q >= kv, score, 0.0)")

    def test_boolean_literals_fold(self):
        self.assertEqual(text(lambda b, h, q, kv: True & (q >= kv), "mask_mod"), "q >= kv")
        self.assertEqual(text(lambda b, h, q, kv: (q >= kv) | False, "mask_mod"), "q >= kv")


class TraceErrorTests(unittest.TestCase):
    def assertTraceError(self, mod, kind="score_mod", contains=""):
        with self.assertRaises(fa.TraceError) as caught:
            fa.mod_text(mod, kind)
        self.assertIn(contains, str(caught.exception))
        return caught.exception

    def test_control_flow(self):
        def mod(score, b, h, q, kv):
            if q > kv:
                return score
            return score * 2
        self.assertTraceError(mod, contains="control flow")
        self.assertTraceError(lambda b, h, q, kv: q >= kv and q - kv < 4, "mask_mod", contains="& | ~")

    def test_float_index(self):
        bias = np.zeros(8, np.float32)
        self.assertTraceError(lambda s, b, h, q, kv: s + bias[s], contains="indices must be Ints")

    def test_bad_results(self):
        self.assertTraceError(lambda b, h, q, kv: q - kv, "mask_mod", contains="returns a Bool")
        self.assertTraceError(lambda s, b, h, q, kv: q > kv, contains="returned a Bool")

    def test_unsupported_operations(self):
        self.assertTraceError(lambda s, b, h, q, kv: s ** 2.5, contains="powers")
        self.assertTraceError(lambda s, b, h, q, kv: np.sin(s), contains="not in the mod language")
        self.assertTraceError(lambda b, h, q, kv: (q & kv) == 0, "mask_mod", contains="Bools")
        import math
        self.assertTraceError(lambda s, b, h, q, kv: math.exp(s), contains="float()")
        bias = np.zeros((3, 4), np.float32)
        self.assertTraceError(lambda s, b, h, q, kv: s + bias, contains="index it")
        self.assertTraceError(lambda s, b, h, q, kv: s + bias[1:, q], contains="slicing")
        self.assertTraceError(lambda s, b, h, q, kv: s + bias[h, q, kv], contains="too many")

    def test_error_is_a_mod_error_and_type_error(self):
        error = self.assertTraceError(lambda s, b, h, q, kv: s[0], contains="cannot be indexed")
        self.assertIsInstance(error, fa.ModError)
        self.assertIsInstance(error, TypeError)
        self.assertIsInstance(error, fa.FlexAttentionError)


class StringModTests(unittest.TestCase):
    def test_mod_args(self):
        bias = np.zeros((2, 5), np.float32)
        mod = fa.trace_mod("score + bias[h, kv] * s", mod_args={"bias": bias, "s": 0.5, "unused": 3})
        self.assertEqual([t.name for t in mod.tables], ["bias"])
        self.assertEqual([(p.name, p.value) for p in mod.params], [("s", 0.5)])

    def test_bad_names(self):
        with self.assertRaises(fa.TraceError):
            fa.trace_mod("score + q", mod_args={"q": 1})

    def test_helpers(self):
        self.assertEqual(T.split_bindings("let a = q - kv; a >= 0"), ("let a = q - kv; ", " a >= 0"))
        self.assertEqual(T.substitute_score("score + my_score", "X"), "(X) + my_score")


@requires_torch
class TorchTraceTests(unittest.TestCase):
    def test_torch_functions(self):
        self.assertEqual(text(lambda s, b, h, q, kv: torch.tanh(s / 20) * 20), "tanh(score / 20.0) * 20.0")
        self.assertEqual(text(lambda s, b, h, q, kv: torch.where(q >= kv, s, -float("inf"))),
                         "where(q >= kv, score, (-1.0 / 0.0))")
        self.assertEqual(text(lambda s, b, h, q, kv: torch.clamp(s, min=-1.0)), "max(score, -1.0)")
        self.assertEqual(text(lambda s, b, h, q, kv: torch.minimum(s.abs(), torch.exp(s).sqrt())),
                         "min(abs(score), sqrt(exp(score)))")
        self.assertEqual(text(lambda b, h, q, kv: torch.logical_and(q >= kv, (q - kv).abs() < 5), "mask_mod"),
                         "q >= kv && abs(q - kv) < 5")

    def test_captured_tensors(self):
        bias = torch.zeros(4, 15)
        doc = torch.tensor([0, 0, 1, 1])
        self.assertEqual(text(lambda s, b, h, q, kv: s + bias[h, q - kv + 7]), "score + bias[h, q - kv + 7]")
        mod = fa.trace_mod(lambda b, h, q, kv: doc[q] == doc[kv], "mask_mod")
        self.assertEqual(mod.tables[0].kind, "int")
        learnable = torch.tensor(2.0, requires_grad=True)
        mod = fa.trace_mod(lambda s, b, h, q, kv: s * learnable)
        self.assertEqual(mod.text, "score * learnable[0]")
        constant = torch.tensor(3)
        mod = fa.trace_mod(lambda s, b, h, q, kv: s * constant)
        self.assertEqual(mod.text, "score * float(constant)")

    def test_tensors_reached_through_attributes(self):
        class Mod:
            def __init__(self):
                self.scale = torch.tensor(2.0, requires_grad=True)
                self.offsets = torch.arange(10)

            def __call__(self, score, b, h, q, kv):
                return score * self.scale + self.offsets[q]
        mod = fa.trace_mod(Mod())
        self.assertEqual(mod.text, "score * tensor0[0] + float(tensor1[q])")

    def test_pytorch_helpers(self):
        try:
            from torch.nn.attention.flex_attention import and_masks, noop_mask, or_masks
        except ImportError:
            self.skipTest("this torch has no flex_attention helpers")
        combined = and_masks(lambda b, h, q, kv: q >= kv, lambda b, h, q, kv: q - kv < 4)
        self.assertEqual(text(combined, "mask_mod"), "q >= kv && q - kv < 4")
        either = or_masks(lambda b, h, q, kv: q >= kv, lambda b, h, q, kv: kv < 2)
        self.assertEqual(text(either, "mask_mod"), "q >= kv || kv < 2")
        self.assertEqual(text(noop_mask, "mask_mod"), "0 == 0")

    def test_unsupported_torch_function(self):
        with self.assertRaises(fa.TraceError) as caught:
            text(lambda s, b, h, q, kv: torch.sin(s))
        self.assertIn("torch.sin", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
