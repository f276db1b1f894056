"""Which GEMM runs a quantized layer's product on the GPU, by M (the rows of the call: tokens
in the step). Each table is (largest M, path) pairs read in order; None ends a table. The
tables hold the fastest path per M that benchmarks/quant_gemm_gpu.py measured (per decoder
layer of the 7B shapes), or, for paths not measured yet (said below), the one expected to be;
it times the paths named here, plus bf16, and prints the table its timings suggest.

int4/int8 (GPTQ, AWQ):
  gemv     up to 8 rows (quant_int_gemv.py): the packed weight streamed once, unpacked per
           row, FMA in registers, no tensor cores, split-K where the columns leave
           multiprocessors idle
  tiled    tensor cores (quant_int_tiled_gemm.py): one weight tile dequantized in registers
           per tl.dot, the weight read once per BLOCK_M rows (16..128 by M)
  decode   quant_int_gemm.py's fused kernel with split-K (DECODE_TILES): eight 16-deep dots
           per K tile, BLOCK_M 16; measured before gemv/tiled existed, kept to be timed
           against them
  dequant  the dense weight written once per call, then cuBLAS

FP8 on fp8 tensor cores (compute capability >= 8.9), activations quantized per token (per
1x128 group for block-wise weights) at every call, except on the GEMV path:
  w8a16-gemv   up to 4 rows (quant_fp8_gemv.py): the fp8 weight streamed once, widened and
               scaled in registers per row, FMA with the unquantized activations, split-K
  w8a8-triton  the Triton W8A8 kernel (quant_fp8_w8a8_gemm.py)
  w8a8-cublas  cuBLAS's scaled GEMM (quant_fp8_scaled_mm.py) where it runs the layer's scales,
               else the Triton kernel
  dequant      the dense bf16 weight written once per call (quant_fp8_dequant.py), then
               cuBLAS's bf16 GEMM: block-wise weights at large M where this torch runs no
               block-wise cuBLAS recipe (activations unquantized)"""
from __future__ import annotations

# Measured on one H200 (torch 2.11, triton 3.6, benchmarks/quant_gpu.sh at commit 678f27d),
# per decoder layer, bf16 cuBLAS 135 us at M=1, 137 at 16, 213 at 256, 2855 at 4096:
# int4  decode (BLOCK_K 128) 148 / 252 us at M = 1 / 16, dequant 295 / 289; at 256 and 4096
#       dequant 356 / 3035 us, the fused kernel (any tiles) 2913 / 41322 or more.
#       gemv and tiled are not measured on a GPU yet. The GEMV reads the weight once (the fused
#       kernel's 148 us is far from the ~30 us of reading 4-bit weights at ~4 TB/s) but unpacks
#       it again for every row: ~4 instructions a weight, ~28 us a row on the H200's fp32
#       lanes, so past 2 rows the tiled kernel (unpacking once per 16 rows) is expected to win;
#       up to 256 it reads the 4-bit weight once per 16..128 rows where dequant writes and reads
#       back a bf16 copy (~4x the weight's bytes).
INT4_PATHS = ((2, "gemv"), (256, "tiled"), (None, "dequant"))
# int8  dequant 22.6 / 21.5 us against decode 35.3 / 45.9 on the qkv shape at M = 1 / 16 (the
#       run ended before the other shapes; decode was timed with BLOCK_K 256 only).
#       gemv and tiled (not measured yet) read one byte a weight where dequant moves five.
INT8_PATHS = ((2, "gemv"), (256, "tiled"), (None, "dequant"))
# fp8 per-tensor  Triton 148 us at M=1 against cuBLAS row-wise 156; cuBLAS 149 / 168 / 1783 at
#                 16 / 256 / 4096 against Triton 153 / 406 / 3825.
#                 The Triton kernel then ran 72 programs (qkv), 56 (o, down) at M <= 16 on
#                 132 multiprocessors; it now splits K there (not measured yet). cuBLAS at 16
#                 took bf16's time (149 us against 137) for half the bytes, so the Triton
#                 kernel with split K is expected to win up to its 64-row tiles.
#                 The GEMV (not measured yet) reads the weight once without the activation
#                 quantizer's kernel (4 a layer, a few us each at M = 1), but widens it again
#                 for every row (~28 us a row of a 7B layer on the fp32 lanes): up to 2 rows.
FP8_PATHS = ((2, "w8a16-gemv"), (64, "w8a8-triton"), (None, "w8a8-cublas"))
# fp8 128x128 blocks  cuBLAS's block-wise recipe did not run on that torch: the Triton kernel
#                     (141 / 145 / 647 / 5964 us) was the fastest path measured at every M.
FP8_BLOCK_PATHS = ((2, "w8a16-gemv"), (None, "w8a8-cublas"))
# fp8 128x128 blocks where cuBLAS's block-wise recipe does not run: the Triton kernel took 2.1x
# bf16's time at M = 4096 (5964 us) and 3.0x at 256 (647); dequant + cuBLAS is expected near the
# int4 dequant path's 1.06x / 1.67x bf16 there, and above the Triton kernel's ~145 us up to 16.
# Not measured yet: 64 is the guess between.
FP8_BLOCK_PATHS_NO_CUBLAS = ((2, "w8a16-gemv"), (64, "w8a8-triton"), (None, "dequant"))


def path_for(table, m: int) -> str:
    for bound, path in table:
        if bound is None or m <= bound:
            return path
    raise ValueError(f"the table {table} does not end with a (None, path) entry")
