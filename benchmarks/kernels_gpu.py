"""Check each Triton kernel against its torch reference in bf16 and time it (H100).

    python benchmarks/kernels_gpu.py           # check + time
    python benchmarks/kernels_gpu.py --tune    # also sweep split-K and tile configs
"""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

import ember.kernels.paged_attention as pa  # noqa: E402
from ember.kernels.activation import silu_and_mul, silu_and_mul_ref  # noqa: E402
from ember.kernels.kv_cache_write import write_kv_cache, write_kv_cache_ref  # noqa: E402
from ember.kernels.rmsnorm import (fused_add_rms_norm, fused_add_rms_norm_ref, rms_norm,  # noqa: E402
                                   rms_norm_ref)
from ember.kernels.rotary import apply_rotary, apply_rotary_ref  # noqa: E402

DEV, DT = "cuda", torch.bfloat16
HQ, HKV, D, BS = 28, 4, 128, 16
ROWS: list[str] = []


def bench_ms(fn, graph=False) -> float:
    """Median ms. graph=True replays fn from a CUDA graph, as the engine runs
    decode: small attention launches are otherwise bound by host launch cost."""
    if graph and hasattr(triton.testing, "do_bench_cudagraph"):
        try:
            return triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median")
        except TypeError:
            return triton.testing.do_bench_cudagraph(fn, rep=100, quantiles=[0.5])[0]
    try:
        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    except TypeError:  # older triton: no return_mode
        return triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5])[0]


def report(name, ms, err=None, gbytes=None, tflop=None):
    rate = f"{gbytes / ms * 1e3:8.0f} GB/s" if gbytes else f"{tflop / ms * 1e3:7.1f} TFLOP/s" if tflop else ""
    e = f"{err:.2e}" if err is not None else "-"
    ROWS.append(f"{name:<44} {ms * 1e3:9.1f} us  {rate:>16}  maxerr {e}")
    print(ROWS[-1], flush=True)


def err(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def attn_case(q_lens, seq_lens):
    """bf16 batch in a NaN-poisoned cache with shuffled blocks."""
    n_blocks = [math.ceil(n / BS) for n in seq_lens]
    perm = torch.randperm(sum(n_blocks) + 1, device=DEV).int()
    shape = (sum(n_blocks) + 1, BS, HKV, D)
    k_cache = torch.full(shape, float("nan"), device=DEV, dtype=DT)
    v_cache = torch.full(shape, float("nan"), device=DEV, dtype=DT)
    bt = torch.zeros(len(seq_lens), max(n_blocks), dtype=torch.int32, device=DEV)
    start = 0
    for s, (n, L) in enumerate(zip(n_blocks, seq_lens)):
        ids = perm[start:start + n]
        start += n
        bt[s, :n] = ids
        pos = torch.arange(L, device=DEV)
        k_cache[ids[pos // BS].long(), pos % BS] = torch.randn(L, HKV, D, device=DEV, dtype=DT)
        v_cache[ids[pos // BS].long(), pos % BS] = torch.randn(L, HKV, D, device=DEV, dtype=DT)
    qsl = torch.tensor([0] + list(q_lens), device=DEV).cumsum(0).int()
    return dict(q=torch.randn(sum(q_lens), HQ, D, device=DEV, dtype=DT), k_cache=k_cache,
                v_cache=v_cache, block_tables=bt, query_start_loc=qsl,
                seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=DEV), scale=D ** -0.5,
                max_query_len=max(q_lens), max_seq_len=max(seq_lens))


def kv_bytes(seq_lens) -> float:
    return sum(seq_lens) * HKV * D * 2 * 2 / 1e9


def attn_flop(q_lens, seq_lens) -> float:  # causal: each query sees ctx + its prefix
    keys = sum(sum(L - ql + i + 1 for i in range(ql)) for ql, L in zip(q_lens, seq_lens))
    return 4 * HQ * D * keys / 1e12


def sweep_configs(c, out, ref, configs, **rate):
    """Time paged_attention under forced (BLOCK_M, TILE_N, warps, stages) configs."""
    base, qpk = pa._block_config, HQ // HKV
    for bm, tn, warps, stages in configs:
        pa._block_config = lambda *a, _c=(bm, bm // qpk, tn, warps, stages): _c
        try:
            ms = bench_ms(lambda: pa.paged_attention(**c, out=out), graph=True)
            report(f"  BM={bm} TN={tn} w={warps} s={stages}", ms, err(out, ref), **rate)
        except Exception as e:  # e.g. out of shared memory
            print(f"  BM={bm} TN={tn} w={warps} s={stages}: {type(e).__name__}")
    pa._block_config = base


def bench_decode(batch, ctx, tune, sweep=False):
    q_lens, seq_lens = [1] * batch, [ctx] * batch
    c = attn_case(q_lens, seq_lens)
    ref = pa.paged_attention_ref(**c)
    out = pa.paged_attention(**c)
    splits = pa.pick_num_splits(batch, HKV, 1, ctx, 16, torch.cuda.get_device_properties(0).multi_processor_count)
    fn = lambda: pa.paged_attention(**c, out=out)  # noqa: E731
    report(f"decode {batch}x{ctx} (splits={splits}) eager", bench_ms(fn), err(out, ref), gbytes=kv_bytes(seq_lens))
    report("  graph replay", bench_ms(fn, graph=True), gbytes=kv_bytes(seq_lens))
    # CUDA graph: capture with loose bounds (as the engine does) and replay.
    g_out = torch.empty_like(out)
    c_graph = dict(c, max_seq_len=max(ctx, 4096))
    pa.paged_attention(**c_graph, out=g_out)  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        pa.paged_attention(**c_graph, out=g_out)
    graph.replay()
    torch.cuda.synchronize()
    e = err(g_out, ref)
    report(f"  graph replay, max_seq_len bound {c_graph['max_seq_len']}",
           bench_ms(lambda: pa.paged_attention(**c_graph, out=g_out), graph=True), e, gbytes=kv_bytes(seq_lens))
    if sweep:
        cfgs = [(16, tn, w, st) for tn in (32, 64, 128) for w, st in ((2, 2), (4, 2), (4, 3), (4, 4), (8, 3))]
        sweep_configs(c, out, ref, cfgs, gbytes=kv_bytes(seq_lens))
    if tune:
        for ns in (1, 2, 4, 8, 16, 32, 64):
            report(f"  num_splits={ns} graph", bench_ms(lambda: pa.paged_attention(**c, out=out, num_splits=ns), True),
                   err(pa.paged_attention(**c, num_splits=ns), ref), gbytes=kv_bytes(seq_lens))


def bench_prefill(tune):
    q_lens = [int(x) for x in torch.linspace(100, 1024, 16).tolist()]
    c = attn_case(q_lens, q_lens)
    ref = pa.paged_attention_ref(**c)
    out = pa.paged_attention(**c)
    flop = attn_flop(q_lens, q_lens)
    report(f"prefill 16 seqs x 100..1024 ({sum(q_lens)} tok)", bench_ms(lambda: pa.paged_attention(**c, out=out), True),
           err(out, ref), tflop=flop)
    if tune:
        cfgs = [(bm, tn, w, st) for bm in (32, 64, 128) for tn in (32, 64) for w, st in ((4, 2), (4, 3), (8, 2))]
        sweep_configs(c, out, ref, cfgs, tflop=flop)
    # Dense SDPA for comparison: one causal call per sequence (no paging, no padding).
    qs = [torch.randn(1, HQ, n, D, device=DEV, dtype=DT) for n in q_lens]
    ks = [torch.randn(1, HQ, n, D, device=DEV, dtype=DT) for n in q_lens]  # K/V pre-expanded for GQA
    report("  torch SDPA dense causal, per sequence",
           bench_ms(lambda: [F.scaled_dot_product_attention(q, k, k, is_causal=True) for q, k in zip(qs, ks)], True),
           tflop=flop)


def bench_mixed():
    q_lens = [1] * 48 + [256, 512]
    seq_lens = [1024] * 48 + [256 + 300, 512 + 1000]
    c = attn_case(q_lens, seq_lens)
    ref = pa.paged_attention_ref(**c)
    out = pa.paged_attention(**c)
    report("mixed 48 decode@1024 + 2 chunked prefills", bench_ms(lambda: pa.paged_attention(**c, out=out), True),
           err(out, ref), gbytes=kv_bytes(seq_lens))


def bench_pointwise():
    T, H, I = 8192, 3584, 18944
    x = torch.randn(T, H, device=DEV, dtype=DT)
    res = torch.randn(T, H, device=DEV, dtype=DT)
    w = (1 + 0.1 * torch.randn(H, device=DEV)).to(DT)
    nb = T * H * 2 / 1e9
    report(f"rms_norm {T}x{H}", bench_ms(lambda: rms_norm(x, w, 1e-6)),
           err(rms_norm(x, w, 1e-6), rms_norm_ref(x, w, 1e-6)), gbytes=2 * nb)
    report("  torch reference", bench_ms(lambda: rms_norm_ref(x, w, 1e-6)), gbytes=2 * nb)
    o, r = fused_add_rms_norm(x, res, w, 1e-6)
    o_ref, r_ref = fused_add_rms_norm_ref(x, res, w, 1e-6)
    report(f"fused_add_rms_norm {T}x{H}", bench_ms(lambda: fused_add_rms_norm(x, res, w, 1e-6)),
           max(err(o, o_ref), err(r, r_ref)), gbytes=4 * nb)
    report("  torch reference", bench_ms(lambda: fused_add_rms_norm_ref(x, res, w, 1e-6)), gbytes=4 * nb)
    g = torch.randn(T, 2 * I, device=DEV, dtype=DT)
    nb = T * I * 2 * 3 / 1e9
    report(f"silu_and_mul {T}x2*{I}", bench_ms(lambda: silu_and_mul(g)),
           err(silu_and_mul(g), silu_and_mul_ref(g)), gbytes=nb)
    report("  torch reference", bench_ms(lambda: silu_and_mul_ref(g)), gbytes=nb)
    del g
    qkv = torch.randn(T, HQ + 2 * HKV, D, device=DEV, dtype=DT)
    pos = torch.randint(0, 32768, (T,), device=DEV)
    inv = 1.0 / 1e6 ** (torch.arange(0, D, 2, device=DEV, dtype=torch.float32) / D)
    fr = torch.outer(torch.arange(32768, device=DEV, dtype=torch.float32), inv)
    cache = torch.cat((fr.cos(), fr.sin()), -1)
    q, k = qkv[:, :HQ], qkv[:, HQ:HQ + HKV]
    qr, kr = apply_rotary_ref(q.clone(), k.clone(), pos, cache)
    apply_rotary(q, k, pos, cache)
    e = max(err(q, qr), err(k, kr))  # before timing: every timed call rotates again
    nb = T * (HQ + HKV) * D * 2 * 2 / 1e9
    report(f"apply_rotary {T}x({HQ}+{HKV})x{D} in place", bench_ms(lambda: apply_rotary(q, k, pos, cache)),
           e, gbytes=nb)
    kc = torch.zeros(T // BS + 8, BS, HKV, D, device=DEV, dtype=DT)
    vc, kc2, vc2 = kc.clone(), kc.clone(), kc.clone()
    slots = torch.randperm(kc.shape[0] * BS, device=DEV)[:T]
    kk, vv = qkv[:, HQ:HQ + HKV], qkv[:, HQ + HKV:]
    write_kv_cache(kk, vv, kc, vc, slots)
    write_kv_cache_ref(kk, vv, kc2, vc2, slots)
    report(f"write_kv_cache {T} tokens", bench_ms(lambda: write_kv_cache(kk, vv, kc, vc, slots)),
           max(err(kc, kc2), err(vc, vc2)), gbytes=T * HKV * D * 2 * 2 * 2 / 1e9)


def main():
    tune = "--tune" in sys.argv
    torch.manual_seed(0)
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.multi_processor_count} SMs, torch {torch.__version__}, triton {triton.__version__}")
    bench_decode(128, 1024, tune, sweep=tune)
    bench_decode(25, 192, tune, sweep=tune)
    if tune:
        for b, ctx in ((8, 4096), (1, 32768), (32, 2048), (64, 512), (16, 8192), (48, 4096)):
            bench_decode(b, ctx, tune, sweep=b == 32)
    bench_prefill(tune)
    bench_mixed()
    bench_pointwise()
    print("\n" + "\n".join(ROWS))


if __name__ == "__main__":
    main()
