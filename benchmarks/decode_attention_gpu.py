"""Sweep the decode attention's launch knobs (ember.kernels.paged_attention.DecodeTuning) on the
GPU at hand, timed as the engine runs it: replayed from a CUDA graph captured with the engine's
context bound (32768: contexts above 512 tokens use it). Prints the KV cache's read rate (TB/s)
per configuration for three batches:

    nano   256 sequences x 600..1000 context, 16 q / 8 KV heads, d=128 (Qwen3-0.6B)
    7b     128 sequences x 600..1000 context, 28 q / 4 KV heads, d=128 (Qwen2.5-7B)
    b1     one sequence of 320 tokens (graph bound 512), 7B heads: batch-1 decoding
    seed   25 sequences x 64..192 (graph bound 512), 7B heads: the `seed` workload's decode
    8x4k   8 sequences x 4096 (graph bound 8192), 7B heads: few long sequences

first in the order before issue 19 (sequence fastest), then every candidate; the best
configuration by the time of nano + 7b, and the best split knobs for batches of fewer programs
than SMs (b1, seed, 8x4k: the few_* knobs) by their summed time, as an EMBER_DECODE_ATTENTION
value, written to --best (one line) for the engine runs that follow. --kv-cache-dtype fp8 (or
fp8_e5m2) sweeps over an 8-bit cache (TB/s of its bytes), where the knobs may want to differ.
About a minute on an H200 (most of it compiling each variant once).

    python benchmarks/decode_attention_gpu.py --best $OUT/decode_best.txt
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

import ember.kernels.paged_attention as pa  # noqa: E402
from benchmarks.graph_timing import graph_us  # noqa: E402

DEV, DT, D, BS = "cuda", torch.bfloat16, 128, 16

# (name, num_seqs, context lengths, q heads, kv heads, graph bound)
SHAPES = {
    "nano": (256, (600, 1000), 16, 8, 32768),
    "7b": (128, (600, 1000), 28, 4, 32768),
    "b1": (1, (320, 320), 28, 4, 512),
    "seed": (25, (64, 192), 28, 4, 512),
    "8x4k": (8, (4096, 4096), 28, 4, 8192),
}
CACHE_DTYPES = {"auto": DT, "fp8": torch.float8_e4m3fn, "fp8_e4m3": torch.float8_e4m3fn,
                "fp8_e5m2": torch.float8_e5m2}
FEW = ("b1", "seed", "8x4k")  # fewer (sequence, KV head) programs than SMs
TILES = [(64, 4, 2), (32, 4, 2), (32, 4, 3), (32, 4, 4), (32, 2, 3), (64, 4, 3), (64, 4, 4), (64, 8, 2),
         (64, 8, 3), (128, 4, 2), (128, 8, 2), (128, 8, 3)]
# (programs_per_sm, min_split_tokens): more pieces per sequence, more programs in flight.
SPLITS = [(2, 512), (8, 256), (16, 256), (32, 128), (64, 128), (64, 64)]
# The same for batches of fewer programs than SMs (few_programs_per_sm, few_min_split_tokens).
FEW_SPLITS = [(2, 512), (8, 128), (16, 64), (32, 64), (64, 128), (64, 64), (128, 32), (1, 64), (2, 64), (4, 64)]


def case(num_seqs, ctx_range, hq, hkv, bound, cache_dtype):
    lens = torch.linspace(ctx_range[0], ctx_range[1], num_seqs).round().int().tolist()
    blocks = [math.ceil(n / BS) for n in lens]
    total = sum(blocks) + 1
    k_cache = torch.randn(total, BS, hkv, D, device=DEV, dtype=DT).to(cache_dtype)
    v_cache = torch.randn(total, BS, hkv, D, device=DEV, dtype=DT).to(cache_dtype)
    perm = torch.randperm(total - 1, device=DEV).int()  # scattered blocks, as after serving a while
    tables = torch.zeros(num_seqs, max(blocks), dtype=torch.int32, device=DEV)
    start = 0
    for s, n in enumerate(blocks):
        tables[s, :n] = perm[start:start + n]
        start += n
    return dict(q=torch.randn(num_seqs, hq, D, device=DEV, dtype=DT), k_cache=k_cache, v_cache=v_cache,
                block_tables=tables, query_start_loc=torch.arange(num_seqs + 1, dtype=torch.int32, device=DEV),
                seq_lens=torch.tensor(lens, dtype=torch.int32, device=DEV), scale=D ** -0.5,
                max_query_len=1, max_seq_len=bound), sum(lens) * hkv * D * k_cache.element_size() * 2


def attention_us(c) -> float:
    out = torch.empty_like(c["q"])
    return graph_us(lambda: pa.paged_attention(**c, out=out), rep=60)


def measure(cases, tuning) -> dict[str, float]:
    pa.DECODE = tuning
    times = {}
    for name, (c, nbytes) in cases.items():
        try:
            us = attention_us(c)
        except Exception as e:  # e.g. out of shared memory for a large tile
            print(f"  {name}: {type(e).__name__}: {str(e)[:80]}", flush=True)
            us = float("inf")
        times[name] = us
    cells = "  ".join(f"{n} {t:7.1f} us {cases[n][1] / t / 1e6:5.2f} TB/s" for n, t in times.items())
    print(f"{describe(tuning):74} {cells}", flush=True)
    return times


def describe(t: pa.DecodeTuning) -> str:
    return ",".join(f"{f.name}={getattr(t, f.name)}" for f in dataclasses.fields(t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--best", default=None, help="write the winner's EMBER_DECODE_ATTENTION value here")
    parser.add_argument("--kv-cache-dtype", default="auto", choices=sorted(CACHE_DTYPES),
                        help="the cache's dtype, as the engine's flag")
    args = parser.parse_args()
    torch.manual_seed(0)
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.multi_processor_count} SMs, torch {torch.__version__}, triton {triton.__version__}")
    start = time.perf_counter()
    cases = {name: case(*shape, CACHE_DTYPES[args.kv_cache_dtype]) for name, shape in SHAPES.items()}
    print(f"KV cache {args.kv_cache_dtype}")
    default = pa.DecodeTuning()
    print("program order: sequence fastest (before issue 19), then KV head fastest (the default):")
    before = measure(cases, dataclasses.replace(default, head_major=0))
    # An 8-bit cache's keys per loop step are a knob of their own (tile_n_8bit).
    tile_knob = "tile_n_8bit" if CACHE_DTYPES[args.kv_cache_dtype].itemsize == 1 else "tile_n"
    print(f"tile configs (split knobs at their defaults; {tile_knob} swept):")
    default_tile = (getattr(default, tile_knob), default.num_warps, default.num_stages)
    tiles = [default_tile] + [t for t in TILES if t != default_tile]  # results[0]: the default
    results = [(t, measure(cases, t)) for t in (dataclasses.replace(default, num_warps=w, num_stages=s, **{tile_knob: n})
                                                 for n, w, s in tiles)]
    big = lambda r: r[1]["nano"] + r[1]["7b"]  # noqa: E731
    best_tile = min(results, key=big)[0]
    print(f"split knobs, with the best tile ({getattr(best_tile, tile_knob)},{best_tile.num_warps},"
          f"{best_tile.num_stages}):")
    results += [(t, measure(cases, t)) for t in (dataclasses.replace(best_tile, programs_per_sm=p_, min_split_tokens=m)
                                                 for p_, m in SPLITS)]
    best = min(results, key=big)
    print("split knobs of batches with fewer programs than SMs, with the best configuration:")
    few_sum = lambda r: sum(r[1][n] for n in FEW)  # noqa: E731
    few = [(t, measure(cases, t)) for t in (dataclasses.replace(best[0], few_programs_per_sm=p_, few_min_split_tokens=m)
                                            for p_, m in FEW_SPLITS)]
    best_few = min(few, key=few_sum)
    base = results[0][1]
    print(f"\nbefore   sequence-major: nano {before['nano']:.1f} us, 7b {before['7b']:.1f} us, b1 {before['b1']:.1f} us")
    print(f"default  {describe(default)}: " + ", ".join(f"{n} {base[n]:.1f} us" for n in SHAPES))
    print(f"best     {describe(best[0])}: nano {best[1]['nano']:.1f} us, 7b {best[1]['7b']:.1f} us "
          f"({(base['nano'] + base['7b']) / big(best):.2f}x the default, "
          f"{(before['nano'] + before['7b']) / big(best):.2f}x sequence-major)")
    print(f"best few {describe(best_few[0])}: " + ", ".join(f"{n} {best_few[1][n]:.1f} us" for n in FEW) +
          f" ({sum(base[n] for n in FEW) / few_sum(best_few):.2f}x the default)")
    best = best_few
    print(f"swept in {time.perf_counter() - start:.0f} s")
    if args.best:
        with open(args.best, "w") as f:
            f.write(describe(best[0]) + "\n")


if __name__ == "__main__":
    main()
