"""Which GEMM runs a quantized layer's product on the GPU, by M (the rows of the call: tokens
in the step). Each table is (largest M, path) pairs read in order; None ends a table. The
bounds are meant to be set from benchmarks/quant_gemm_gpu.py, which times every path at
M = 1, 16, 256 and 4096 on the 7B shapes and prints the fastest per M.

int4/int8 (GPTQ, AWQ), ember/kernels/quant_int_gemm.py:
  decode   the fused kernel with split-K: the packed weight read once, dequantized in registers
  tiled    the same kernel with larger M tiles and no split
  dequant  the dense weight written once per call, then cuBLAS

FP8 on fp8 tensor cores (compute capability >= 8.9):
  w8a16    the weight widened to the activation dtype in the tile loop (quant_fp8_gemm.py)
  w8a8     activations quantized per token (per 1x128 group for block-wise weights), then
           cuBLAS's scaled GEMM where it runs the layer's scales (quant_fp8_scaled_mm.py),
           else the Triton W8A8 kernel (quant_fp8_w8a8_gemm.py)"""
from __future__ import annotations

# Not measured on the GPU yet: starting guesses (decode is bandwidth-bound, prefill compute-bound).
INT_PATHS = ((16, "decode"), (128, "tiled"), (None, "dequant"))
FP8_PATHS = ((None, "w8a8"),)


def path_for(table, m: int) -> str:
    for bound, path in table:
        if bound is None or m <= bound:
            return path
    raise ValueError(f"the table {table} does not end with a (None, path) entry")
