#!/usr/bin/env python3
"""flexattention_swift inside a Hugging Face model nobody here wrote: transformers' LlamaForCausalLM.

Run from the repository root on the GPU machine:

    PYTHONPATH=python FLEXATTENTION_LIBRARY=.gpu/libflexattention.so python3 scripts/hf_llama_proof.py

Environment: OUT=<dir> also writes <dir>/hf_llama.json. HF_PROOF_STRICT_TOKENS=1 fails any divergence of the greedy
tokens, even where the reference's own rounding cannot tell the two tokens apart (see below). HF_PROOF_KEEP_CACHES=1
keeps the caller's kernel caches (FLEXATTENTION_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR) instead of fresh
empty ones, so the first-call numbers are then not cold. HF_PROOF_PROMPT / HF_PROOF_STEPS change the prompt length
(2048) and the decode steps (64); HF_PROOF_DEVICE (cuda) exists only to try the script without a GPU against a
stand-in module. Internal: `--first-call IMPL` is the child run described below.

The model: LlamaConfig(vocab 32000, hidden 1024, intermediate 2816, 4 layers, 16 query heads, 4 KV heads, head_dim 64,
max_position_embeddings 4096), random weights from torch.manual_seed(0) (transformers' own init, std 0.02), then two
changes that make the random model behave more like a trained one, documented here because they matter: every q_proj
weight is multiplied by QK_GAIN = 2 (attention scores of a few units, so attention is peaked rather than uniform:
mask errors show and soft-capping acts), and each lm_head row by exp(N(0, 1)) (seed 5) so that greedy choices have
margins (with a plain random head the top two logits of 32000 are usually closer than bf16 rounding). bf16 on CUDA,
eval mode. The "truth" is a float32 copy of the same (bf16-rounded) weights running a dense float32 attention with
the same mask and soft-cap (TF32 off).

Attention implementations are registered with transformers.AttentionInterface.register(name, fn) and selected with
model.set_attn_implementation(name) (transformers 5.x). transformers hands custom implementations no mask
(attention_mask=None); each function asserts that, or that a mask it gets is purely causal for batch 1.
  "flexattention_swift": flexattention_swift.flex_attention(q, k, v, block_mask=..., scale=scaling, enable_gqa=True)
      with a causal mask aligned bottom-right (q_idx + (Skv - Sq) >= kv_idx, so that one decode query sees every cached
      key), built with flexattention_swift.create_block_mask once per (Sq, Skv) and cached.
  "torch_flex_ref": torch.compile(flex_attention) (as transformers' flex integration does) with the same mask and score
      mod through torch's create_block_mask; its offset is a 0-d tensor so that decode steps do not recompile.
  "sdpa" and "eager": transformers' own; eager only to show the noise floor (how soon two torch implementations part).
Variants SDPA cannot express, each ours against torch_flex_ref: a Gemma-style sliding window of 512 (q - kv < 512, on
top of causal) and soft-capping of the attention logits, cap * tanh(score / cap) with cap = 5 (this model's scores are
a few units: a cap of 50 would change nothing; the script prints how far each variant moves the logits).

Why a float32 truth rather than fixed tolerances: a random bf16 model amplifies rounding. Measured with torch 2.13
on CPU: SDPA and eager attention (both PyTorch) differ by 1.2e-2 (relative) in the prompt's logits and their greedy
tokens part after 24 to 41 steps. So ours is judged by being as close to the truth as the reference is. "Within the
reference's noise" below means: where two tokens compete, the truth's logits of the two differ by at most 4 sigma of
the reference's own deviation from the truth in that row (sigma = std over the vocabulary of (reference - truth) /
lm_head row norm, scaled by the two rows' norms): a difference the reference itself could not resolve.
  layer0: layer 0's attention output in the prefill (q, k, v identical for every implementation) against a float64
      attention of the captured q, k, v: err(ours) <= 2 err(reference) + 1e-3 and <= 2e-2.
  prefill: the prompt's logits: err(ours vs truth) <= 1.5 err(reference vs truth) + 2e-3, and at most 0.25% of the
      positions where ours' argmax differs from the truth's fall outside the reference's noise (the reference's own
      count is printed too).
  generate: greedy decoding with a DynamicCache: the prefill picks a token, then 64 decode steps each feed the last
      token and pick the next (65 tokens), for the reference and for ours; the truth is fed the reference's tokens. Ours
      passes when its tokens equal the reference's and max over steps err(ours vs truth) <= 1.5 max err(reference vs
      truth) + 2e-3. If the tokens part, the first divergence and the margins there are printed, ours is run again fed
      the reference's tokens (still one decode step at a time), and it passes (marked "diverged") only if the logit
      bound holds and every step where ours picks another token than the reference is within the reference's noise.
      HF_PROOF_STRICT_TOKENS=1 turns any divergence into a failure.
Timings (CUDA events around whole model calls, warmed up; prefill median of 3, decode mean over 3 x 64 steps): sdpa,
ours and torch.compile(flex_attention), causal and both variants. First-call latency: wall time of the very first
prefill of ours and of compiled flex in this process, with empty kernel caches (ours: FLEXATTENTION_CACHE_DIR; torch:
TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR, all fresh temporary folders unless HF_PROOF_KEEP_CACHES=1), so ours
includes NVRTC compilation and torch includes torch.compile; then again in a child process that finds those caches
filled (kernels loaded from disk). A Markdown table for BENCHMARKS.md is printed at the end. Exit status 1 on any FAIL.
"""
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

from json_report import write_report  # scripts/ is the script's own folder, first on sys.path

T0 = time.time()
CHILD_IMPL = sys.argv[2] if len(sys.argv) >= 3 and sys.argv[1] == "--first-call" else None
KEEP_CACHES = os.environ.get("HF_PROOF_KEEP_CACHES") == "1"
CACHE_NOTE = "caller's caches (HF_PROOF_KEEP_CACHES=1)"
if CHILD_IMPL is None and not KEEP_CACHES:
    # Before torch and flexattention_swift are imported: fresh, empty kernel caches for a cold first call.
    CACHE_ROOT = tempfile.mkdtemp(prefix="hf_llama_proof_caches_")
    for variable, folder in (("FLEXATTENTION_CACHE_DIR", "flexattention"), ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
                             ("TRITON_CACHE_DIR", "triton")):
        os.environ[variable] = os.path.join(CACHE_ROOT, folder)
        os.makedirs(os.environ[variable], exist_ok=True)
    CACHE_NOTE = f"fresh empty caches under {CACHE_ROOT}"


def log(message):
    print(message, flush=True)


RESULTS = []
REPORT = {"checks": RESULTS, "timings": {}, "first_call": {}, "notes": []}


def write_json(fatal_message=None):
    out_dir = os.environ.get("OUT")
    if not out_dir or CHILD_IMPL is not None:
        return
    REPORT["summary"] = {"PASS": sum(r["status"] == "PASS" for r in RESULTS),
                         "FAIL": sum(r["status"] == "FAIL" for r in RESULTS),
                         "elapsed_s": round(time.time() - T0, 1), "fatal": fatal_message}
    try:
        write_report(out_dir, "hf_llama.json", REPORT)
    except OSError as error:
        log(f"warning: could not write JSON to {out_dir}: {error}")


def fatal(message):
    log(f"FATAL: {message}")
    write_json(fatal_message=message)
    sys.exit(1)


def record(status, name, detail, **extra):
    RESULTS.append({"status": status, "name": name, "detail": detail, **extra})
    log(f"{status} {name} {detail}")
    write_json()


try:
    import torch
    from torch.nn.attention.flex_attention import create_block_mask as torch_create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as torch_flex_attention
except ImportError as import_error:
    fatal(f"torch with torch.nn.attention.flex_attention is needed: {import_error}")
try:
    import transformers
    from transformers import AttentionInterface, DynamicCache, LlamaConfig, LlamaForCausalLM
except ImportError as import_error:
    fatal(f"transformers 5.x with AttentionInterface, DynamicCache and Llama is needed: {import_error}")

DEVICE = os.environ.get("HF_PROOF_DEVICE", "cuda")
ON_CUDA = DEVICE == "cuda"
if ON_CUDA and not torch.cuda.is_available():
    fatal("torch.cuda.is_available() is False: this proof runs on the GPU")
if int(transformers.__version__.split(".")[0]) < 5:
    fatal(f"transformers {transformers.__version__}: this script is written for the 5.x attention interface")

_t = time.time()
try:
    import flexattention_swift as fa
except Exception as import_error:  # noqa: BLE001
    traceback.print_exc()
    fatal(f"cannot import flexattention_swift (PYTHONPATH={os.environ.get('PYTHONPATH')!r}, "
          f"FLEXATTENTION_LIBRARY={os.environ.get('FLEXATTENTION_LIBRARY')!r}): {import_error!r}")
IMPORT_S = time.time() - _t
for _name in ("flex_attention", "create_block_mask"):
    if not callable(getattr(fa, _name, None)):
        fatal(f"flexattention_swift has no callable {_name!r}")

warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
for _limit in ("recompile_limit", "cache_size_limit"):  # decode steps change Skv at every call
    if hasattr(torch._dynamo.config, _limit):
        setattr(torch._dynamo.config, _limit, 512)
# The float32 truth must be float32: no TF32 anywhere.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

PROMPT = int(os.environ.get("HF_PROOF_PROMPT", "2048"))
STEPS = int(os.environ.get("HF_PROOF_STEPS", "64"))
QK_GAIN = 2.0
LM_HEAD_SPREAD = 1.0
WINDOW = 512
SOFTCAP = 5.0
VARIANTS = {"causal": {"window": None, "softcap": None},
            f"window{WINDOW}": {"window": WINDOW, "softcap": None},
            f"softcap{SOFTCAP:g}": {"window": None, "softcap": SOFTCAP}}
RATIO, FLOOR = 1.5, 2e-3
PREFILL_UNEXPLAINED = 0.0025  # share of prompt positions whose argmax may differ from the truth's beyond the noise
STRICT_TOKENS = os.environ.get("HF_PROOF_STRICT_TOKENS") == "1"


def synchronize():
    if ON_CUDA:
        torch.cuda.synchronize()


def mark():
    if ON_CUDA:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def elapsed_ms(start, end):
    return start.elapsed_time(end) if ON_CUDA else (end - start) * 1000.0


def rel(value, reference):
    a, b = value.detach().to(torch.float64), reference.detach().to(torch.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape {tuple(a.shape)} vs reference {tuple(b.shape)}")
    if not torch.isfinite(a).all():
        return math.inf
    norm = b.norm().item()
    return (a - b).norm().item() / norm if norm > 0 else (a - b).norm().item()


# ------------------------------------------------------------------------------------------------------------------
def build_model():
    config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
                         num_attention_heads=16, num_key_value_heads=4, head_dim=64, max_position_embeddings=4096,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(QK_GAIN)
        spread = torch.randn(config.vocab_size, 1, generator=torch.Generator().manual_seed(5))
        model.lm_head.weight.mul_(torch.exp(LM_HEAD_SPREAD * spread))
    model = model.to(device=DEVICE, dtype=torch.bfloat16).eval()
    if model.config._attn_implementation != "sdpa":
        fatal(f"a new LlamaForCausalLM uses {model.config._attn_implementation!r}, expected 'sdpa'")
    attention = model.model.layers[0].self_attn
    if attention.head_dim != 64 or attention.num_key_value_groups != 4 or abs(attention.scaling - 0.125) > 1e-12:
        fatal(f"unexpected attention module: head_dim {attention.head_dim}, groups {attention.num_key_value_groups}, "
              f"scaling {attention.scaling}")
    return model


def make_prompt():
    generator = torch.Generator(device="cpu").manual_seed(1234)
    return torch.randint(0, 32000, (1, PROMPT), generator=generator).to(DEVICE)


def check_attention_mask(mask, batch, q_len, kv_len):
    """Ours ignores attention_mask: accept only None or a purely causal (bottom-right) mask for batch 1."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        raise AssertionError(f"attention_mask of type {type(mask).__name__} is not supported by this proof")
    if batch != 1 or mask.shape[0] != 1 or mask.shape[1] != 1:
        raise AssertionError(f"attention_mask {tuple(mask.shape)}: only batch 1 without padding is supported")
    view = mask[0, 0, :, :kv_len]
    rows = torch.arange(q_len, device=mask.device).view(q_len, 1) + (kv_len - q_len)
    expected = torch.arange(kv_len, device=mask.device).view(1, kv_len) <= rows
    kept = view if view.dtype == torch.bool else view == 0
    if tuple(kept.shape) != (q_len, kv_len) or not torch.equal(kept, expected):
        raise AssertionError("attention_mask is not purely causal (padding or another pattern): refusing to ignore it")


class Attention:
    """One attention implementation for transformers' AttentionInterface: 'ours' or 'flex' (torch), any variant."""

    def __init__(self, kind):
        self.kind = kind
        self.variant = "causal"
        self.masks = {}
        self.capture = None  # a dict to fill with layer 0's q, k, v of the next prefill
        self.calls = 0
        self.flex = None
        self.flex_note = "torch.compile(flex_attention)"
        if kind == "flex":
            self.offset = torch.zeros((), dtype=torch.int32, device=DEVICE)
            offset = self.offset
            self.torch_masks = {
                None: lambda b, h, q_idx, kv_idx: q_idx + offset >= kv_idx,
                WINDOW: lambda b, h, q_idx, kv_idx: (q_idx + offset >= kv_idx) & (q_idx + offset - kv_idx < WINDOW),
            }
            self.torch_softcap = lambda score, b, h, q_idx, kv_idx: torch.tanh(score / SOFTCAP) * SOFTCAP
            self.flex = torch.compile(torch_flex_attention)
        else:
            self.ours_softcap = lambda score, b, h, q_idx, kv_idx: torch.tanh(score / SOFTCAP) * SOFTCAP

    def block_mask(self, batch, heads, q_len, kv_len, window):
        key = (self.variant, batch, heads, q_len, kv_len)
        mask = self.masks.get(key)
        if mask is None:
            if self.kind == "ours":
                offset = kv_len - q_len
                if window is None:
                    def mask_mod(b, h, q_idx, kv_idx):
                        return q_idx + offset >= kv_idx
                else:
                    def mask_mod(b, h, q_idx, kv_idx):
                        return (q_idx + offset >= kv_idx) & (q_idx + offset - kv_idx < window)
                mask = fa.create_block_mask(mask_mod, batch, heads, q_len, kv_len, device=DEVICE)
            else:
                self.offset.fill_(kv_len - q_len)
                mask = torch_create_block_mask(self.torch_masks[window], batch, heads, q_len, kv_len, device=DEVICE)
            self.masks[key] = mask
        return mask

    def __call__(self, module, query, key, value, attention_mask, scaling=None, dropout=0.0, sliding_window=None,
                 softcap=None, **kwargs):
        if dropout:
            raise AssertionError(f"dropout {dropout} in an eval-mode proof")
        if kwargs.get("is_causal") is False or getattr(module, "is_causal", True) is not True:
            raise AssertionError("a non-causal attention call: this implementation is causal only")
        batch, heads, q_len, head_dim = query.shape
        kv_heads, kv_len = key.shape[1], key.shape[2]
        check_attention_mask(attention_mask, batch, q_len, kv_len)
        settings = VARIANTS[self.variant]
        window, cap = settings["window"], settings["softcap"]
        if sliding_window is not None or softcap is not None:  # a model that asks for these itself (not Llama)
            if (sliding_window, softcap) != (window, cap):
                raise AssertionError(f"the model asks for sliding_window={sliding_window}, softcap={softcap}; the "
                                     f"variant is window={window}, softcap={cap}")
        self.calls += 1
        mask = self.block_mask(batch, heads, q_len, kv_len, window)
        if self.kind == "ours":
            out = fa.flex_attention(query, key, value, score_mod=self.ours_softcap if cap else None, block_mask=mask,
                                    scale=scaling, enable_gqa=heads != kv_heads)
        else:
            self.offset.fill_(kv_len - q_len)
            arguments = dict(score_mod=self.torch_softcap if cap else None, block_mask=mask, scale=scaling,
                             enable_gqa=heads != kv_heads)
            try:
                out = self.flex(query, key, value, **arguments)
            except Exception as error:  # noqa: BLE001
                if self.flex is torch_flex_attention:
                    raise
                log(f"  note: torch.compile(flex_attention) failed ({type(error).__name__}: {str(error)[:300]}); "
                    f"the torch reference falls back to eager flex_attention from here on")
                REPORT["notes"].append(f"compiled flex failed: {error!r}")
                self.flex, self.flex_note = torch_flex_attention, "eager flex_attention (compile failed)"
                out = self.flex(query, key, value, **arguments)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, heads, q_len, head_dim):
            raise AssertionError(f"{self.kind}: attention returned {type(out).__name__} "
                                 f"{tuple(getattr(out, 'shape', ()))}, expected {(batch, heads, q_len, head_dim)}")
        if self.capture is not None and module.layer_idx == 0 and q_len > 1:
            self.capture.update(q=query.detach().clone(), k=key.detach().clone(), v=value.detach().clone(),
                                scale=scaling)
            self.capture = None
        return out.transpose(1, 2).contiguous(), None


class DenseTruth:
    """Dense attention in the inputs' dtype (float32 in the truth model), same masks and soft-cap as the variants."""

    def __init__(self):
        self.variant = "causal"
        self.capture = None

    def __call__(self, module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        batch, heads, q_len, _ = query.shape
        kv_heads, kv_len = key.shape[1], key.shape[2]
        check_attention_mask(attention_mask, batch, q_len, kv_len)
        window, cap = VARIANTS[self.variant]["window"], VARIANTS[self.variant]["softcap"]
        key = key.repeat_interleave(heads // kv_heads, dim=1)
        value = value.repeat_interleave(heads // kv_heads, dim=1)
        scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
        if cap is not None:
            scores = torch.tanh(scores / cap) * cap
        rows = torch.arange(q_len, device=query.device).view(q_len, 1) + (kv_len - q_len)
        cols = torch.arange(kv_len, device=query.device).view(1, kv_len)
        keep = cols <= rows
        if window is not None:
            keep &= (rows - cols) < window
        scores = scores.masked_fill(~keep, -math.inf)
        out = torch.matmul(torch.softmax(scores, dim=-1), value)
        return out.transpose(1, 2).contiguous(), None


OURS = Attention("ours")
FLEX = Attention("flex")
TRUTH = DenseTruth()
NAMES = {"ours": "flexattention_swift", "flex": "torch_flex_ref", "truth": "dense_truth", "sdpa": "sdpa",
         "eager": "eager"}
AttentionInterface.register(NAMES["ours"], OURS)
AttentionInterface.register(NAMES["flex"], FLEX)
AttentionInterface.register(NAMES["truth"], TRUTH)
IMPLS = {"ours": OURS, "flex": FLEX, "truth": TRUTH}

LAYER0 = {"on": False, "out": None}


def o_proj_hook(_module, args):
    if LAYER0["on"] and args[0].shape[1] > 1:
        LAYER0["out"] = args[0].detach().clone()
        LAYER0["on"] = False


def select(model, impl, variant):
    if impl in IMPLS:
        IMPLS[impl].variant = variant
    elif variant != "causal":
        raise AssertionError(f"{impl} is only a plain causal reference")
    model.set_attn_implementation(NAMES[impl])
    if model.config._attn_implementation != NAMES[impl]:
        raise AssertionError(f"set_attn_implementation({NAMES[impl]!r}) left {model.config._attn_implementation!r}")


def generate(model, prompt, impl, variant, forced=None, timed=False, capture=False):
    """Prefill, then STEPS decode steps with a DynamicCache; greedy, or fed the tokens `forced` (teacher forcing)."""
    select(model, impl, variant)
    holder = {}
    if capture and impl in ("ours", "flex"):
        IMPLS[impl].capture = holder
    LAYER0["on"] = capture
    cache = DynamicCache(config=model.config)
    marks = []
    with torch.no_grad():
        start = mark()
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True)
        marks.append((start, mark()))
        prefill_logits = None if timed else out.logits[0]
        token = out.logits[0, -1].argmax()
        tokens, step_logits = [token], [out.logits[0, -1].float()]
        del out
        for step in range(STEPS):
            feed = forced[step] if forced is not None else token
            start = mark()
            out = model(input_ids=feed.view(1, 1), past_key_values=cache, use_cache=True)
            marks.append((start, mark()))
            logits = out.logits[0, -1]
            token = logits.argmax()
            tokens.append(token)
            step_logits.append(logits.float())
    synchronize()
    LAYER0["on"] = False
    if impl in ("ours", "flex"):
        IMPLS[impl].capture = None
    result = {"tokens": torch.stack(tokens), "step_logits": torch.stack(step_logits), "prefill_logits": prefill_logits,
              "prefill_ms": elapsed_ms(*marks[0]), "decode_ms": [elapsed_ms(a, b) for a, b in marks[1:]]}
    if capture:
        result["layer0_out"] = LAYER0["out"]
        result["layer0_qkv"] = holder
        LAYER0["out"] = None
    return result


def first_prefill_seconds(model, prompt, impl, variant="causal"):
    select(model, impl, variant)
    synchronize()
    started = time.perf_counter()
    with torch.no_grad():
        model(input_ids=prompt, past_key_values=DynamicCache(config=model.config), use_cache=True)
    synchronize()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------------------------
def argmax_agreement(logits, reference):
    return (logits.argmax(-1) == reference.argmax(-1)).float().mean().item()


ROW_NORMS = None  # the lm_head rows' norms, set in main()


def explain(truth_row, ref_row, wanted, picked):
    """Whether the truth's logits of two tokens are closer than the reference's own rounding could resolve.

    The reference's deviation from the truth, d = ref - truth = W (h_ref - h_truth), has per-token size proportional to
    the lm_head row norm; sigma = std(d / row_norm) over the vocabulary, and the difference of two tokens' deviations
    is about sigma * hypot(norm_a, norm_b). Returns (gap, envelope = 4 of those).
    """
    sigma = ((ref_row.float() - truth_row.float()) / ROW_NORMS).std().item()
    envelope = 4 * sigma * math.hypot(ROW_NORMS[wanted].item(), ROW_NORMS[picked].item())
    gap = abs((truth_row[wanted] - truth_row[picked]).item())
    return gap, envelope


def other_picks(logits, wanted, truth, reference):
    """Rows where `logits` picks another token than `wanted`: (row, truth gap, envelope, explained)."""
    picked = logits.argmax(-1)
    rows = []
    for row in (picked != wanted).nonzero().flatten().tolist():
        gap, envelope = explain(truth[row], reference[row], int(wanted[row]), int(picked[row]))
        rows.append((row, round(gap, 4), round(envelope, 4), gap <= envelope))
    return rows


def compare_prefill(name, ours, reference, truth, who="ours"):
    o, r, t = ours["prefill_logits"], reference["prefill_logits"], truth["prefill_logits"]
    e_ours, e_ref = rel(o, t), rel(r, t)
    bound = RATIO * e_ref + FLOOR
    wanted = t.argmax(-1)
    ours_other = other_picks(o, wanted, t, r)
    ref_other = other_picks(r, wanted, t, r)
    ours_unexplained = [x[:3] for x in ours_other if not x[3]]
    ref_unexplained = [x[:3] for x in ref_other if not x[3]]
    allowed = int(PREFILL_UNEXPLAINED * o.shape[0])
    ok = e_ours <= bound and len(ours_unexplained) <= allowed
    record("PASS" if ok else "FAIL", f"prefill/{name}",
           f"logits vs truth: {who} {e_ours:.2e}, reference {e_ref:.2e} (bound {bound:.2e}); argmax differs from the "
           f"truth's at {len(ours_other)} of {o.shape[0]} positions for {who} ({len(ours_unexplained)} beyond the "
           f"reference's noise, allowed {allowed}), {len(ref_other)} for the reference ({len(ref_unexplained)} beyond "
           f"its own noise); {who} vs reference: rel {rel(o, r):.2e}, argmax agreement "
           f"{100 * argmax_agreement(o, r):.2f}%",
           ours_vs_truth=e_ours, reference_vs_truth=e_ref, ours_other_picks=len(ours_other),
           reference_other_picks=len(ref_other), ours_unexplained=ours_unexplained[:20],
           reference_unexplained=ref_unexplained[:20])


def compare_generation(model, prompt, name, ours, reference, truth, impl, variant):
    """`truth` was fed the reference's tokens; see the module docstring for the rule."""
    ref_tokens, our_tokens = reference["tokens"], ours["tokens"]
    identical = torch.equal(ref_tokens, our_tokens)
    ref_steps, truth_steps = reference["step_logits"], truth["step_logits"]
    detail = ""
    if identical:
        steps = ours["step_logits"]
    else:
        position = int((ref_tokens != our_tokens).nonzero()[0])
        a, b = int(ref_tokens[position]), int(our_tokens[position])
        ref_row, our_row, truth_row = (x["step_logits"][position] for x in (reference, ours, truth))
        gap, envelope = explain(truth_row, ref_row, a, b)
        detail = (f"tokens part at step {position} of {len(ref_tokens)}: reference {a}, ours {b} (reference's margin "
                  f"{(ref_row[a] - ref_row[b]).item():.4g}, ours' {(our_row[b] - our_row[a]).item():.4g}, truth's "
                  f"{(truth_row[a] - truth_row[b]).item():.4g}, the reference's noise envelope {envelope:.4g}); ")
        log(f"  {name}: {detail}teacher-forcing ours on the reference's tokens")
        steps = generate(model, prompt, impl, variant, forced=ref_tokens)["step_logits"]
    e_ours = max(rel(steps[i], truth_steps[i]) for i in range(len(ref_tokens)))
    e_ref = max(rel(ref_steps[i], truth_steps[i]) for i in range(len(ref_tokens)))
    bound = RATIO * e_ref + FLOOR
    picks = other_picks(steps, ref_tokens, truth_steps, ref_steps)
    explained = [x[:3] for x in picks if x[3]]
    unexplained = [x[:3] for x in picks if not x[3]]
    ok = e_ours <= bound and not unexplained and (identical or not STRICT_TOKENS)
    if identical:
        detail = f"{len(ref_tokens)} greedy tokens identical to the reference's; "
    else:
        detail = ("diverged: " if ok else "") + detail + (
            f"teacher-forced, ours picks another token at (step, truth gap, envelope) {explained} within the "
            f"reference's noise and {unexplained} beyond it; ")
    detail += f"worst step logits vs truth: ours {e_ours:.2e}, reference {e_ref:.2e} (bound {bound:.2e})"
    if STRICT_TOKENS and not identical:
        detail += " (HF_PROOF_STRICT_TOKENS=1)"
    record("PASS" if ok else "FAIL", f"generate/{name}", detail, identical=identical, ours_vs_truth=e_ours,
           reference_vs_truth=e_ref, reference_tokens=ref_tokens.tolist(), ours_tokens=our_tokens.tolist(),
           other_picks_explained=explained, other_picks_unexplained=unexplained)


def layer0_reference(capture, variant):
    """Float64 attention output [1, S, H, D] of layer 0 from its captured q, k, v."""
    q, k, v = (capture[n].to(torch.float64) for n in ("q", "k", "v"))
    scale = capture["scale"]
    heads, kv_heads, length = q.shape[1], k.shape[1], q.shape[2]
    window, cap = VARIANTS[variant]["window"], VARIANTS[variant]["softcap"]
    rows = torch.arange(length, device=q.device).view(length, 1)
    cols = torch.arange(length, device=q.device).view(1, length)
    keep = cols <= rows
    if window is not None:
        keep &= (rows - cols) < window
    outs = []
    for h in range(heads):
        kh, vh = k[0, h // (heads // kv_heads)], v[0, h // (heads // kv_heads)]
        scores = (q[0, h] @ kh.T) * scale
        if cap is not None:
            scores = torch.tanh(scores / cap) * cap
        scores = scores.masked_fill(~keep, -math.inf)
        outs.append(torch.softmax(scores, dim=-1) @ vh)
    return torch.stack(outs, dim=1).unsqueeze(0)  # [1, S, H, D]


def compare_layer0(name, variant, ours, reference, who="ours"):
    capture = ours["layer0_qkv"]
    if not capture:
        raise AssertionError(f"{who} was not called for layer 0 during the prefill: the implementation was not used")
    if ours["layer0_out"] is None or reference["layer0_out"] is None:
        raise AssertionError("layer 0's attention output was not captured")
    expected = layer0_reference(capture, variant)
    e_ours = rel(ours["layer0_out"].view(expected.shape), expected)
    e_ref = rel(reference["layer0_out"].view(expected.shape), expected)
    bound = min(2 * e_ref + 1e-3, 2e-2)
    record("PASS" if e_ours <= bound else "FAIL", f"layer0/{name}",
           f"attention output vs float64: {who} {e_ours:.2e}, reference {e_ref:.2e} (bound {bound:.2e})",
           ours_vs_fp64=e_ours, reference_vs_fp64=e_ref)


# ------------------------------------------------------------------------------------------------------------------
def child_main():
    """`--first-call IMPL`: the first prefill of a new process, whose kernel caches are already on disk."""
    model = build_model()
    prompt = make_prompt()
    first_prefill_seconds(model, prompt, "sdpa")  # CUDA context, cuBLAS and the allocator, as in the parent
    seconds = first_prefill_seconds(model, prompt, CHILD_IMPL)
    print("FIRST_CALL_JSON " + json.dumps({"impl": CHILD_IMPL, "seconds": seconds, "import_s": IMPORT_S}), flush=True)
    return 0


def run_child(impl):
    started = time.time()
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--first-call", impl], env=dict(os.environ),
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        log(f"  note: the first-call child for {impl} timed out")
        return None
    for line in done.stdout.splitlines():
        if line.startswith("FIRST_CALL_JSON "):
            value = json.loads(line[len("FIRST_CALL_JSON "):])
            value["process_s"] = time.time() - started
            return value
    log(f"  note: the first-call child for {impl} failed (exit {done.returncode}):\n{done.stdout[-1500:]}\n"
        f"{done.stderr[-3000:]}")
    return None


def cache_files(variable):
    folder = os.environ.get(variable)
    if not folder or not os.path.isdir(folder):
        return None
    return sum(len(files) for _, _, files in os.walk(folder))


def main():
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.cuda.get_device_name(0) if ON_CUDA else DEVICE}; flexattention_swift from "
        f"{getattr(fa, '__file__', '?')} (import {IMPORT_S:.2f} s); {CACHE_NOTE}")
    REPORT["environment"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                             "gpu": torch.cuda.get_device_name(0) if ON_CUDA else None,
                             "flexattention_swift": getattr(fa, "__file__", None), "caches": CACHE_NOTE,
                             "FLEXATTENTION_CACHE_DIR": os.environ.get("FLEXATTENTION_CACHE_DIR"),
                             "FLEXATTENTION_LIBRARY": os.environ.get("FLEXATTENTION_LIBRARY"),
                             "prompt": PROMPT, "steps": STEPS, "qk_gain": QK_GAIN, "lm_head_spread": LM_HEAD_SPREAD,
                             "window": WINDOW, "softcap": SOFTCAP}
    global ROW_NORMS
    model = build_model()
    truth_model = copy.deepcopy(model).to(torch.float32)  # the same bf16-rounded weights, computed in float32
    ROW_NORMS = model.lm_head.weight.detach().float().norm(dim=1)
    model.model.layers[0].self_attn.o_proj.register_forward_pre_hook(o_proj_hook)
    prompt = make_prompt()
    log(f"models built ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, bf16 and a float32 "
        f"truth; {time.time() - T0:.0f} s)")

    runs = {}

    def run(impl, variant, first=False):
        started = time.time()
        if first:
            files_before = cache_files("FLEXATTENTION_CACHE_DIR" if impl == "ours" else "TORCHINDUCTOR_CACHE_DIR")
            seconds = first_prefill_seconds(model, prompt, impl, variant)
            REPORT["first_call"][impl] = {"seconds": seconds, "cache_files_before": files_before,
                                          "cache": CACHE_NOTE}
            log(f"  first prefill call of {impl}: {seconds:.2f} s (kernel cache files before: {files_before})")
        runs[(impl, variant)] = generate(model, prompt, impl, variant, capture=True)
        log(f"  ran {impl}/{variant} ({time.time() - started:.1f} s, {time.time() - T0:.0f} s in all)")
        return runs[(impl, variant)]

    def truth_on(reference, variant):
        """The float32 truth fed the reference's tokens."""
        key = ("truth", variant)
        if key not in runs:
            runs[key] = generate(truth_model, prompt, "truth", variant, forced=reference["tokens"])
        return runs[key]

    def stage(name, body):
        """Runs one part; an exception fails that part (printed with its traceback) and the script goes on."""
        try:
            body()
            return True
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            record("FAIL", f"stage/{name}", f"raised {type(error).__name__}: {str(error)[:400]}")
            if ON_CUDA:
                try:
                    torch.cuda.synchronize()
                except Exception as cuda_error:  # noqa: BLE001
                    fatal(f"the CUDA context is broken after {name}: {cuda_error!r}")
            return False

    def causal_stage():
        sdpa = run("sdpa", "causal")
        eager = run("eager", "causal")
        ours = run("ours", "causal", first=True)
        truth = truth_on(sdpa, "causal")
        parted = (sdpa["tokens"] != eager["tokens"]).nonzero()
        floor = {"eager_vs_truth": rel(eager["prefill_logits"], truth["prefill_logits"]),
                 "sdpa_vs_truth": rel(sdpa["prefill_logits"], truth["prefill_logits"]),
                 "eager_vs_sdpa_first_token_divergence": int(parted[0]) if len(parted) else None}
        REPORT["noise_floor"] = floor
        log(f"  noise floor: transformers' eager vs sdpa, both torch: prompt logits vs truth {floor['eager_vs_truth']:.2e}"
            f" and {floor['sdpa_vs_truth']:.2e}; greedy tokens "
            + (f"part at step {floor['eager_vs_sdpa_first_token_divergence']}" if len(parted) else "identical"))
        compare_layer0("causal/ours-vs-sdpa", "causal", ours, sdpa)
        compare_prefill("causal/ours-vs-sdpa", ours, sdpa, truth)
        compare_generation(model, prompt, "causal/ours-vs-sdpa", ours, sdpa, truth, "ours", "causal")

    def torch_flex_stage():
        flex = run("flex", "causal", first=True)
        # The reference of the variants, checked on plain causal (its layer 0 against float64, its logits vs truth).
        sdpa = runs[("sdpa", "causal")]
        compare_layer0("causal/torchflex-vs-sdpa", "causal", flex, sdpa, who="torch flex")
        compare_prefill("causal/torchflex-vs-sdpa", flex, sdpa, truth_on(sdpa, "causal"), who="torch flex")

    def variant_stage(variant):
        reference = run("flex", variant)
        ours = run("ours", variant)
        truth = truth_on(reference, variant)
        compare_layer0(f"{variant}/ours-vs-torchflex", variant, ours, reference)
        compare_prefill(f"{variant}/ours-vs-torchflex", ours, reference, truth)
        compare_generation(model, prompt, f"{variant}/ours-vs-torchflex", ours, reference, truth, "ours", variant)
        if ("truth", "causal") in runs:
            effect = rel(truth["prefill_logits"], runs[("truth", "causal")]["prefill_logits"])
            noise = rel(reference["prefill_logits"], truth["prefill_logits"])
            REPORT.setdefault("variant_effect", {})[variant] = {"truth_vs_causal_truth": effect,
                                                                "reference_vs_truth": noise}
            log(f"  {variant} moves the truth's logits from plain causal by rel {effect:.2e} (bf16 noise: {noise:.2e})"
                + ("" if effect > 5 * noise else "  NOTE: not far above the noise: a weak check of this variant"))

    log("== causal: ours against sdpa (transformers' eager shows the noise floor)")
    stage("causal", causal_stage)
    log("== causal: torch.compile(flex_attention), the reference of the variants")
    if ("sdpa", "causal") in runs:
        stage("torch-flex-causal", torch_flex_stage)
    for variant in list(VARIANTS)[1:]:
        log(f"== {variant}: ours against torch's flex_attention with the same mask and score mod")
        stage(variant, lambda: variant_stage(variant))

    for value in runs.values():  # free the big logits before timing
        value["prefill_logits"] = None

    log("== timings (CUDA events around model calls; prefill median of 3, decode mean over 3 x steps)")
    rows = []
    for impl, variant in [("sdpa", "causal"), ("ours", "causal"), ("flex", "causal")] + [
            (impl, variant) for variant in list(VARIANTS)[1:] for impl in ("ours", "flex")]:
        if (impl, variant) not in runs:
            log(f"  {impl}/{variant}: not timed (its correctness run failed)")
            continue

        def time_it():
            prefill, decode = [], []
            for _ in range(3):
                timing = generate(model, prompt, impl, variant, timed=True)
                prefill.append(timing["prefill_ms"])
                decode.extend(timing["decode_ms"])
            prefill_ms = sorted(prefill)[1]
            decode_ms = sum(decode) / len(decode)
            REPORT["timings"][f"{impl}/{variant}"] = {"prefill_ms": prefill_ms, "decode_ms_per_token": decode_ms,
                                                      "prefill_runs_ms": prefill}
            rows.append((impl, variant, prefill_ms, decode_ms))
            log(f"  {impl}/{variant}: prefill {prefill_ms:.2f} ms, decode {decode_ms:.3f} ms/token")

        stage(f"timing-{impl}-{variant}", time_it)

    if time.time() - T0 < 300:
        log("== first call in a new process whose kernel caches are already filled")
        for impl in ("ours", "flex"):
            value = run_child(impl)
            REPORT["first_call"][impl + "_warm_disk"] = value
            if value:
                log(f"  {impl}: first prefill {value['seconds']:.3f} s in a new process "
                    f"(child ran {value['process_s']:.0f} s in all)")
    else:
        log("== first call in a new process: skipped (over 300 s already)")
        REPORT["notes"].append("warm-disk first-call children skipped for time")

    print_table(rows)
    failed = [r["name"] for r in RESULTS if r["status"] == "FAIL"]
    log(f"== summary: {len(RESULTS) - len(failed)} passed, {len(failed)} failed in {time.time() - T0:.0f} s")
    for name in failed:
        log(f"   FAILED: {name}")
    write_json()
    return 1 if failed else 0


def print_table(rows):
    labels = {"sdpa": "SDPA (transformers `sdpa`)", "ours": "flexattention_swift",
              "flex": f"torch: {FLEX.flex_note}"}
    device = torch.cuda.get_device_name(0) if ON_CUDA else DEVICE
    first = REPORT["first_call"]

    def first_text(impl):
        cold, warm = first.get(impl), first.get(impl + "_warm_disk")
        parts = []
        if cold:
            parts.append(f"{cold['seconds']:.2f} s ({'empty caches' if not KEEP_CACHES else 'caller caches'})")
        if warm:
            parts.append(f"{warm['seconds']:.3f} s (new process, caches on disk)")
        return ", ".join(parts) or "—"

    lines = [f"LlamaForCausalLM (transformers {transformers.__version__}), 4 layers, hidden 1024, 16 query / 4 KV heads, "
             f"head_dim 64, bf16, batch 1, {PROMPT}-token prompt, {STEPS} greedy decode steps with a DynamicCache; "
             f"{device}, torch {torch.__version__}. Whole-model times ({'CUDA events' if ON_CUDA else 'wall clock'}), "
             f"prefill median of 3, decode mean of 3 x {STEPS} steps.", "",
             "| attention | variant | prefill (ms) | decode (ms/token) | first prefill call |",
             "| --- | --- | ---: | ---: | --- |"]
    for impl, variant, prefill_ms, decode_ms in rows:
        first_cell = first_text(impl) if variant == "causal" and impl != "sdpa" else ""
        lines.append(f"| {labels[impl]} | {variant} | {prefill_ms:.2f} | {decode_ms:.3f} | {first_cell} |")
    log("== Markdown for BENCHMARKS.md")
    for line in lines:
        print(line, flush=True)
    REPORT["markdown"] = "\n".join(lines)


if __name__ == "__main__":
    if CHILD_IMPL is not None:
        sys.exit(child_main())
    try:
        status = main()
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001
        traceback.print_exc()
        fatal(f"unexpected {type(error).__name__}: {error}")
    sys.exit(status)
