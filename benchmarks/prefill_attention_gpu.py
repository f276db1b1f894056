"""Prefill attention for long prompts on one GPU (issue 19, item 1), Qwen2.5-7B shape (28 q / 4 kv
heads, d=128, bf16, KV paged in blocks of 16): every attention path the device's torch and Ember
offer, each checked against paged_attention_ref on small cases, then timed on

    mix16: 16 fresh prompts of 100..1024 tokens (a rand7b-like prefill step, several sequences),
    fresh 8k, 32k, 128k prompts (one sequence, causal) and
    chunk: an 8k-token chunk over 24k tokens of cached context (seq_len 32k), as chunked prefill
           of a 32k prompt runs its last chunk (bottom-right causal: query i sees keys <= ctx + i).

Paths: Ember's unified Triton paged kernel alone ("triton-unified", as before issue 19); its
large-tile prefill kernel ("triton-prefill", ember/kernels/prefill_attention.py, with a short
config sweep); paged_attention as the engine calls it ("engine": long sequences routed to the
prefill kernel, a lone one to cuDNN where cudnn_prefill_attend finds a way, printed first);
"cudnn-lone": ember/kernels/prefill_attention_dense.py (paged K/V gathered, a chunk split into its
cached context and the rest, merged by log-sum-exp, lengths bucketed; "cudnn-lone-repeated": K/V
copied out to every q head); torch's varlen flash (`varlen_attn`, GQA
and causal form feature-detected, and the aten op under it with its native GQA); FlexAttention
(compiled, causal + GQA); SDPA's flash and cuDNN backends on dense tensors and cuDNN's varlen op;
and the cost of gathering a sequence's K/V out of the paged cache into contiguous tensors (what a
dense path pays per layer call over cached context). TFLOP/s counts causal work only:
4 * d * Hq * (keys each query sees), so 2 * 2 * Sq * Sk_avg * d * Hq.

    python benchmarks/prefill_attention_gpu.py              # everything, < 120 s
    python benchmarks/prefill_attention_gpu.py --cases 8k,chunk --paths engine,varlen --sweep ''
A path whose 32k call would put 128k past ~1.5 s per call is skipped at 128k.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ember.kernels.paged_attention as pa  # noqa: E402
from ember.kernels.prefill_attention import prefill_attention, prefill_config  # noqa: E402
from ember.kernels.prefill_attention_dense import ATTENDS, cudnn_prefill_attend, lone_sequence_attention  # noqa: E402

DEV, DT = "cuda", torch.bfloat16
HQ, HKV, D, BS = 28, 4, 128, 16
SCALE = D ** -0.5
START = time.monotonic()


class NotApplicable(Exception):
    """A path that does not take this case (several sequences where it takes one)."""


@dataclass
class Case:
    """One batch in both layouts: paged (Ember's cache, shuffled blocks, NaN in unowned slots)
    and contiguous (each sequence's keys back to back, as varlen/dense paths take them)."""
    name: str
    q_lens: list[int]
    seq_lens: list[int]
    q: torch.Tensor          # [sum q_lens, HQ, D]
    k: torch.Tensor          # [sum seq_lens, HKV, D]
    v: torch.Tensor
    k_cache: torch.Tensor    # [blocks, BS, HKV, D]
    v_cache: torch.Tensor
    block_tables: torch.Tensor
    query_start_loc: torch.Tensor
    key_start_loc: torch.Tensor
    seq_lens_t: torch.Tensor

    @property
    def single(self) -> bool:
        return len(self.q_lens) == 1

    def tflop(self) -> float:
        keys = sum(ql * (L - ql) + ql * (ql + 1) // 2 for ql, L in zip(self.q_lens, self.seq_lens))
        return 4 * D * HQ * keys / 1e12

    def paged_args(self):
        return dict(q=self.q, k_cache=self.k_cache, v_cache=self.v_cache, block_tables=self.block_tables,
                    query_start_loc=self.query_start_loc, seq_lens=self.seq_lens_t, scale=SCALE,
                    max_query_len=max(self.q_lens), max_seq_len=max(self.seq_lens))


def make_case(name, q_lens, seq_lens, device=DEV) -> Case:
    torch.manual_seed(0)
    n_blocks = [math.ceil(n / BS) for n in seq_lens]
    total = sum(n_blocks) + 1
    perm = torch.randperm(total, device=device).int()
    k_cache = torch.full((total, BS, HKV, D), float("nan"), device=device, dtype=DT)
    v_cache = torch.full_like(k_cache, float("nan"))
    bt = torch.full((len(seq_lens), max(n_blocks)), int(perm[-1]), dtype=torch.int32, device=device)
    k = torch.randn(sum(seq_lens), HKV, D, device=device, dtype=DT)
    v = torch.randn_like(k)
    start = key0 = 0
    for s, (n, L) in enumerate(zip(n_blocks, seq_lens)):
        ids = perm[start:start + n]
        start += n
        bt[s, :n] = ids
        pos = torch.arange(L, device=device)
        k_cache[ids[pos // BS].long(), pos % BS] = k[key0:key0 + L]
        v_cache[ids[pos // BS].long(), pos % BS] = v[key0:key0 + L]
        key0 += L
    cum = lambda xs: torch.tensor([0] + list(xs), device=device).cumsum(0).int()  # noqa: E731
    return Case(name, list(q_lens), list(seq_lens), torch.randn(sum(q_lens), HQ, D, device=device, dtype=DT),
                k, v, k_cache, v_cache, bt, cum(q_lens), cum(seq_lens),
                torch.tensor(seq_lens, dtype=torch.int32, device=device))


# ---- paths: each takes a Case and returns a zero-argument callable producing out [sum q_lens, HQ, D]

def path_engine(c: Case):
    """paged_attention as the engine calls it: long sequences routed to the prefill kernel, a lone
    one to cuDNN where cudnn_prefill_attend finds a way."""
    out = torch.empty_like(c.q)
    args = c.paged_args()
    return lambda: pa.paged_attention(**args, out=out)


def path_triton_unified(c: Case):
    """The unified kernel alone for every sequence, as before the prefill kernel existed."""
    out = torch.empty_like(c.q)
    args = c.paged_args()

    def run():
        routed, pa.LONG_Q_LEN = pa.LONG_Q_LEN, 2**31 - 1
        try:
            return pa.paged_attention(**args, out=out)
        finally:
            pa.LONG_Q_LEN = routed
    return run


def path_triton_prefill(c: Case, config=None):
    """Ember's large-tile prefill kernel (ember/kernels/prefill_attention.py), every sequence."""
    out = torch.empty_like(c.q)
    return lambda: prefill_attention(c.q, c.k_cache, c.v_cache, c.block_tables, c.query_start_loc, c.seq_lens_t,
                                     SCALE, max(c.q_lens), 1, out, config=config)


def path_cudnn_lone(c: Case, attend=ATTENDS[0]):
    """ember/kernels/prefill_attention_dense.py, as the engine calls it for a lone sequence: K/V
    with their own heads (cuDNN's GQA)."""
    if not c.single:
        raise NotApplicable("a lone sequence only")
    return lambda: lone_sequence_attention(c.q, c.k_cache, c.v_cache, c.block_tables, SCALE, c.q_lens[0],
                                           c.seq_lens[0], None, attend)


def path_cudnn_lone_repeated(c: Case):
    """The same with K/V copied out to every q head (before cuDNN's own GQA was probed for)."""
    return path_cudnn_lone(c, ATTENDS[1])


def _varlen_fn():
    from torch.nn.attention.varlen import varlen_attn
    return varlen_attn, inspect.signature(varlen_attn).parameters


def _causal_kwargs(params) -> dict:
    if "is_causal" in params:
        return dict(is_causal=True)
    return dict(window_size=(-1, 0))


def path_varlen(c: Case):
    """Public varlen_attn; K/V heads expanded to HQ where it has no enable_gqa."""
    fn, params = _varlen_fn()
    kw = dict(_causal_kwargs(params), scale=SCALE)
    k, v = c.k, c.v
    if "enable_gqa" in params:
        kw["enable_gqa"] = True
    else:
        k, v = (t.repeat_interleave(HQ // HKV, dim=1) for t in (c.k, c.v))
    return lambda: fn(c.q, k, v, c.query_start_loc, c.key_start_loc, max(c.q_lens), max(c.seq_lens), **kw)


def path_aten_flash_gqa(c: Case):
    """torch.ops.aten._flash_attention_forward (FlashAttention-2 varlen) with the 4 KV heads as
    they are: its kernel does GQA natively even where varlen_attn's wrapper does not."""
    op = torch.ops.aten._flash_attention_forward

    def run():
        return op(c.q, c.k, c.v, c.query_start_loc, c.key_start_loc, max(c.q_lens), max(c.seq_lens),
                  0.0, True, False, scale=SCALE)[0]
    return run


def path_gather_kv(c: Case):
    """Not attention: the paged cache -> contiguous K and V of every sequence (what a dense path
    over cached context pays per layer call). Its output is the gathered K, checked against c.k."""
    nb = [math.ceil(L / BS) for L in c.seq_lens]

    def run():
        ks, vs = [], []
        for s, (n, L) in enumerate(zip(nb, c.seq_lens)):
            blocks = c.block_tables[s, :n]
            ks.append(c.k_cache.index_select(0, blocks).view(-1, HKV, D)[:L])
            vs.append(c.v_cache.index_select(0, blocks).view(-1, HKV, D)[:L])
        return torch.cat(ks) if len(ks) > 1 else ks[0], torch.cat(vs) if len(vs) > 1 else vs[0]
    return run


_FLEX = {}


def path_flex(c: Case, kernel_options=None):
    """FlexAttention, compiled once (dynamic shapes), causal aligned bottom-right, enable_gqa."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    if not c.single:
        raise NotApplicable("single sequence only here")
    if "fn" not in _FLEX:
        _FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
    sq, sk = c.q_lens[0], c.seq_lens[0]
    offset = torch.tensor(sk - sq, device=c.q.device)  # a tensor: new shapes need no new trace

    def causal(b, h, q_idx, kv_idx):
        return q_idx + offset >= kv_idx
    mask = create_block_mask(causal, None, None, sq, sk, device=c.q.device, _compile=True)
    q = c.q.transpose(0, 1)[None]
    k, v = c.k.transpose(0, 1)[None], c.v.transpose(0, 1)[None]
    kw = dict(block_mask=mask, scale=SCALE, enable_gqa=True)
    if kernel_options:
        kw["kernel_options"] = kernel_options
    return lambda: _FLEX["fn"](q, k, v, **kw)[0].transpose(0, 1)


def path_flex_tuned(c: Case):
    return path_flex(c, dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=2))


def _sdpa(c: Case, backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right
    if not c.single:
        raise NotApplicable("single sequence only here")
    sq, sk = c.q_lens[0], c.seq_lens[0]
    q = c.q.transpose(0, 1)[None]
    k, v = c.k.transpose(0, 1)[None], c.v.transpose(0, 1)[None]
    mask = dict(is_causal=True) if sq == sk else dict(attn_mask=causal_lower_right(sq, sk))
    be = getattr(SDPBackend, backend)
    try:  # GQA in the kernel, if this backend takes it
        with sdpa_kernel(be):
            F.scaled_dot_product_attention(q[:, :, :16], k[:, :, :16], v[:, :, :16], is_causal=True,
                                           enable_gqa=True)
        kw = dict(enable_gqa=True)
    except RuntimeError:
        k, v = (t.repeat_interleave(HQ // HKV, dim=1) for t in (k, v))
        kw = {}
        print(f"    ({backend}: no GQA, K/V expanded to {HQ} heads)")

    def run():
        with sdpa_kernel(be):
            return F.scaled_dot_product_attention(q, k, v, scale=SCALE, **mask, **kw)[0].transpose(0, 1)
    return run


def path_cudnn_varlen(c: Case):
    """aten._cudnn_attention_forward with cumulative lengths (varlen), K/V heads expanded (its GQA
    is not known here); whether its causal mask is bottom-right shows on the chunk check."""
    op = torch.ops.aten._cudnn_attention_forward
    k, v = (t.repeat_interleave(HQ // HKV, dim=1) for t in (c.k, c.v))
    return lambda: op(c.q, k, v, None, c.query_start_loc, c.key_start_loc, max(c.q_lens), max(c.seq_lens),
                      False, 0.0, True, False, scale=SCALE)[0]


def path_sdpa_flash(c: Case):
    return _sdpa(c, "FLASH_ATTENTION")


def path_sdpa_cudnn(c: Case):
    return _sdpa(c, "CUDNN_ATTENTION")


# Compiling paths last: their compile time must not starve the others of the budget.
PATHS = {
    "triton-unified": path_triton_unified,
    "engine": path_engine,
    "triton-prefill": path_triton_prefill,
    "aten-flash-gqa": path_aten_flash_gqa,
    "cudnn-lone": path_cudnn_lone,
    "cudnn-lone-repeated": path_cudnn_lone_repeated,
    "varlen": path_varlen,
    "sdpa-flash": path_sdpa_flash,
    "sdpa-cudnn": path_sdpa_cudnn,
    "cudnn-varlen": path_cudnn_varlen,
    "gather-kv": path_gather_kv,
    "flex": path_flex,
    "flex-128x128": path_flex_tuned,
}

# Timed batches: (q_lens, seq_lens). "mix16" is rand7b's kind of prefill step (16 fresh prompts of
# 100..1024 tokens, as benchmarks/kernels_gpu.py times it), for the short-prompt side of the routing.
_MIX = [int(x) for x in torch.linspace(100, 1024, 16).tolist()]
CASES = {"mix16": (_MIX, _MIX), "8k": ([8192], [8192]), "chunk": ([8192], [32768]),
         "32k": ([32768], [32768]), "128k": ([131072], [131072])}


FIRST_MS: dict[str, float] = {}  # the last time_ms's first call (compiles, cuDNN plan builds)


def time_ms(fn, min_time=0.25, max_iters=20) -> float:
    """Median of CUDA-event timings after one warm-up call; stops at max_iters or min_time."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    FIRST_MS["last"] = (time.perf_counter() - t0) * 1e3
    times, spent = [], 0.0
    while len(times) < 3 or (spent < min_time and len(times) < max_iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
        spent += times[-1] / 1e3
    return sorted(times)[len(times) // 2]


def check(paths) -> dict[str, str]:
    """Each path against paged_attention_ref on a fresh prompt and a chunk over cached context
    (bottom-right causal), plus a 3-sequence varlen batch where the path takes several."""
    small = [make_case("fresh 1000", [1000], [1000]), make_case("chunk 300 over 700", [300], [1000]),
             make_case("3 seqs", [200, 1, 333], [500, 77, 333])]
    verdict = {}
    for name in paths:
        errs = []
        for c in small:
            try:
                got = PATHS[name](c)()
            except NotApplicable:
                continue
            except Exception as e:  # a path the device's torch lacks or refuses: say so, go on
                errs.append(f"{c.name}: {type(e).__name__}: {str(e).splitlines()[0][:90] if str(e) else ''}")
                continue
            if name == "gather-kv":
                err = (got[0].float() - c.k.float()).abs().max().item()
            else:
                ref = pa.paged_attention_ref(**{**c.paged_args(), "q": c.q.float(),
                                                "k_cache": c.k_cache.float(), "v_cache": c.v_cache.float()})
                err = (got.float() - ref).abs().max().item()
            errs.append(f"{c.name} maxerr {err:.1e}" + ("" if err < 5e-2 else " WRONG"))
        verdict[name] = "; ".join(errs)
        print(f"check {name:<24} {verdict[name]}", flush=True)
    return verdict


# (BLOCK_M, BLOCK_N, num_warps, num_stages) tried for the prefill kernel (--sweep cases, 25 s at most).
SWEEP = [(128, 64, 8, 3), (128, 64, 8, 4), (128, 128, 8, 3), (128, 128, 8, 2), (128, 64, 4, 3),
         (64, 64, 4, 3), (128, 32, 8, 4), (256, 64, 8, 3)]


def sweep(case_names, seconds):
    budget = time.monotonic() - START + seconds
    print(f"\nprefill kernel configs (default {prefill_config(D, 32768)} at 32k, {prefill_config(D, 1024)} at 1k):")
    for case_name in case_names:
        c = make_case(case_name, *CASES[case_name])
        for cfg in SWEEP:
            if time.monotonic() - START > budget:
                print("  sweep stopped: past the budget")
                return
            try:
                ms = time_ms(path_triton_prefill(c, cfg), min_time=0.1, max_iters=5)
                print(f"  {case_name:<6} BM={cfg[0]} BN={cfg[1]} w={cfg[2]} s={cfg[3]}: {ms:8.3f} ms "
                      f"{c.tflop() / ms * 1e3:7.1f} TFLOP/s", flush=True)
            except Exception as e:  # e.g. out of shared memory
                print(f"  {case_name:<6} {cfg}: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}")
        del c


def new_shapes(paths, budget):
    """First call against the steady median at query/key lengths no earlier call used: what a
    prompt of a new length pays (cuDNN builds an execution plan per shape; Triton compiles per
    config only)."""
    print("\nfirst call at new lengths (ms): first / median")
    for i, name in enumerate(paths):
        line = []
        for q_len, seq_len in ((6000 + 48 * i, 6000 + 48 * i), (5000 + 48 * i, 21000 + 48 * i)):
            if time.monotonic() - START > budget:
                line.append("past the budget")
                break
            c = make_case(f"{q_len}/{seq_len}", [q_len], [seq_len])
            try:
                ms = time_ms(PATHS[name](c), min_time=0.05, max_iters=5)
                line.append(f"{q_len}/{seq_len}: {FIRST_MS['last']:.1f} / {ms:.2f}")
            except Exception as e:
                line.append(f"{q_len}/{seq_len}: {type(e).__name__}")
        print(f"  {name:<24} " + "; ".join(line), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--sweep", default="32k,mix16,chunk", help="cases for the prefill-kernel config sweep ('' = none)")
    ap.add_argument("--new-shapes", default="engine,cudnn-lone,aten-flash-gqa,triton-prefill",
                    help="paths whose first call at new lengths is timed ('' = none)")
    ap.add_argument("--budget", type=float, default=110.0, help="seconds; later timings are skipped past it")
    args = ap.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    p = torch.cuda.get_device_properties(0)
    import triton
    print(f"{p.name}, {p.multi_processor_count} SMs, torch {torch.__version__}, triton {triton.__version__}, "
          f"cudnn {torch.backends.cudnn.version()}")
    _, params = _varlen_fn()
    print("varlen_attn parameters:", ", ".join(params))
    attend = cudnn_prefill_attend(torch.device(DEV, 0), HQ, HKV, D, DT)
    print("cudnn_prefill_attend (cuDNN for a lone long sequence):", attend and attend.__name__)
    # Compiled paths are checked after the timings: their compile time must not starve the rest.
    compiled = [p for p in paths if p.startswith("flex")]
    verdict = check([p for p in paths if p not in compiled])
    if args.sweep:
        sweep(args.sweep.split(","), 25.0)
    rows, ms32 = [], {}
    for case_name in args.cases.split(","):
        c = make_case(case_name, *CASES[case_name])
        print(f"\n{case_name}: q {sum(c.q_lens)} x keys {sum(c.seq_lens)} in {len(c.q_lens)} sequence(s), "
              f"{c.tflop():.2f} TFLOP per call", flush=True)
        for name in paths:
            if time.monotonic() - START > args.budget:
                print(f"  {name:<24} skipped: past the {args.budget:.0f} s budget")
                continue
            if case_name == "128k" and 16 * ms32.get(name, 0) > 1500:
                print(f"  {name:<24} skipped: 32k took {ms32[name]:.0f} ms")
                continue
            if "WRONG" in verdict.get(name, ""):
                print(f"  {name:<24} skipped: wrong on the small check")
                continue
            try:
                t0 = time.monotonic()
                fn = PATHS[name](c)
                ms = time_ms(fn)
            except NotApplicable:
                continue
            except Exception as e:
                print(f"  {name:<24} failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
                continue
            if case_name == "32k":
                ms32[name] = ms
            rate = "" if name == "gather-kv" else f"{c.tflop() / ms * 1e3:7.1f} TFLOP/s"
            rows.append(f"{case_name:<6} {name:<24} {ms:9.3f} ms {rate:>16}")
            print(f"  {name:<24} {ms:9.3f} ms {rate:>16}   (first call {FIRST_MS['last']:.1f} ms, "
                  f"all {time.monotonic() - t0:.1f} s)", flush=True)
        del c
        torch.cuda.empty_cache()
    if args.new_shapes:
        new_shapes([p for p in args.new_shapes.split(",") if p], args.budget + 10)
    if compiled and time.monotonic() - START < args.budget:
        print()
        check(compiled)
    elif compiled:
        print(f"\n{', '.join(compiled)}: not checked (past the budget); their timings above are unverified")
    print("\nsummary (median ms, causal TFLOP/s):\n" + "\n".join(rows))
    print(f"total {time.monotonic() - START:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
