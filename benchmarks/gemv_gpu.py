"""Triton's GEMV (ember/kernels/gemv.py) against cuBLAS (F.linear) for the few-row products of
decoding, bf16, replayed from CUDA graphs as the engine runs them: us and the weight's read
rate (TB/s) per shape and row count, for the 7B shape (Qwen2.5-7B) and nano (Qwen3-0.6B).
Check against F.linear first. About 30 s on an H200. `--sweep` then times the GEMV's launch
knobs (rows per program, weight elements per K step, warps) at M=1 on the 7B's projections and
their halves under tensor parallelism (TP=2), and prints the best per shape against
DEFAULT_KNOBS.

    python benchmarks/gemv_gpu.py [--sweep]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

from benchmarks.graph_timing import graph_us  # noqa: E402
from ember.kernels.gemv import DEFAULT_KNOBS, GemvKnobs, gemv  # noqa: E402

# (model, layer, N, K, bias)
SHAPES = [
    ("7b", "qkv", 4608, 3584, True), ("7b", "o_proj", 3584, 3584, False),
    ("7b", "gate_up", 37888, 3584, False), ("7b", "down", 3584, 18944, False),
    ("nano", "qkv", 4096, 1024, False), ("nano", "o_proj", 1024, 2048, False),
    ("nano", "gate_up", 6144, 1024, False), ("nano", "down", 1024, 3072, False),
]


# The 7B's M=1 products whole and as each of 2 ranks holds them: (name, N, K).
SWEEP_SHAPES = [("qkv", 4608, 3584), ("o_proj", 3584, 3584), ("gate_up", 37888, 3584), ("down", 3584, 18944),
                ("qkv/2", 2304, 3584), ("o_proj/2", 3584, 1792), ("gate_up/2", 18944, 3584), ("down/2", 3584, 9472)]
SWEEP = list(itertools.product((2, 4, 8, 16), (4096, 8192, 16384), (4, 8)))  # block_n, elements, num_warps


def sweep() -> None:
    print(f"\nlaunch knobs at M=1 (block_n, elements, num_warps; chosen: DEFAULT_KNOBS {tuple(DEFAULT_KNOBS)[:3]}):")
    totals = {cfg: 0.0 for cfg in SWEEP}
    chosen_total = 0.0
    for name, n, k in SWEEP_SHAPES:
        chosen = tuple(DEFAULT_KNOBS)[:3]
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        ref = F.linear(x, w).float()
        times = {}
        for cfg in SWEEP:
            bn, el, nw = cfg
            err = (gemv(x, w, knobs=GemvKnobs(*cfg)).float() - ref).abs().max().item()
            assert err < 0.05, (name, cfg, err)
            times[cfg] = graph_us(lambda: gemv(x, w, knobs=GemvKnobs(bn, el, nw)), times=10)
            totals[cfg] += times[cfg]
        best = min(times, key=times.get)
        chosen_total += times[chosen]
        tb = n * k * 2 / 1e6
        print(f"  {name:10} {n:6}x{k:<6} chosen {chosen} {times[chosen]:6.1f} us {tb / times[chosen]:5.2f} TB/s   "
              f"best {best} {times[best]:6.1f} us {tb / times[best]:5.2f} TB/s", flush=True)
    best_total = min(totals, key=totals.get)
    print(f"sum over the 8 shapes: DEFAULT_KNOBS {chosen_total:.1f} us; the best single config {best_total} "
          f"{totals[best_total]:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.multi_processor_count} SMs, torch {torch.__version__}, triton {triton.__version__}")
    torch.manual_seed(0)
    wins = total_cublas = total_gemv = 0.0
    for model, layer, n, k, has_bias in SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        b = torch.randn(n, device="cuda", dtype=torch.bfloat16) if has_bias else None
        for m in (1, 2, 4):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            err = (gemv(x, w, b).float() - F.linear(x, w, b).float()).abs().max().item()
            cublas = graph_us(lambda: F.linear(x, w, b), times=10)
            ours = graph_us(lambda: gemv(x, w, b), times=10)
            tb = n * k * 2 / 1e6
            wins += ours < cublas
            if m == 1 and model == "7b":
                total_cublas, total_gemv = total_cublas + cublas, total_gemv + ours
            print(f"{model:5} {layer:8} M={m} {n:6}x{k:<6} cuBLAS {cublas:7.1f} us {tb / cublas:5.2f} TB/s   "
                  f"gemv {ours:7.1f} us {tb / ours:5.2f} TB/s   {cublas / ours:5.2f}x  maxerr {err:.1e}", flush=True)
    print(f"\nTriton GEMV faster in {int(wins)} of {3 * len(SHAPES)} cases; a 7B layer's four products at M=1: "
          f"cuBLAS {total_cublas:.1f} us, gemv {total_gemv:.1f} us (x28 layers: "
          f"{28 * (total_cublas - total_gemv) / 1e3:+.2f} ms per token with the GEMV)")
    if args.sweep:
        sweep()


if __name__ == "__main__":
    main()
