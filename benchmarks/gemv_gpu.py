"""Triton's GEMV (ember/kernels/gemv.py) against cuBLAS (F.linear) for the few-row products of
decoding, bf16, replayed from CUDA graphs as the engine runs them: us and the weight's read
rate (TB/s) per shape and row count, for the 7B shape (Qwen2.5-7B) and nano (Qwen3-0.6B).
Check against F.linear first. About 30 s on an H200.

    python benchmarks/gemv_gpu.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

from benchmarks.graph_timing import graph_us  # noqa: E402
from ember.kernels.gemv import gemv  # noqa: E402

# (model, layer, N, K, bias)
SHAPES = [
    ("7b", "qkv", 4608, 3584, True), ("7b", "o_proj", 3584, 3584, False),
    ("7b", "gate_up", 37888, 3584, False), ("7b", "down", 3584, 18944, False),
    ("nano", "qkv", 4096, 1024, False), ("nano", "o_proj", 1024, 2048, False),
    ("nano", "gate_up", 6144, 1024, False), ("nano", "down", 1024, 3072, False),
]


def main() -> None:
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


if __name__ == "__main__":
    main()
