"""Which GEMM runs a quantized layer's product on the GPU, by M (the rows of the call: tokens
in the step). Each table is (largest M, path) pairs read in order; None ends a table. The
tables hold the fastest path per M that benchmarks/quant_gemm_gpu.py measured (per decoder
layer of the 7B shapes; FP8_BLOCK_PATHS, for a torch with cuBLAS's block-wise recipe, is
not measured); it times the paths named here, plus bf16, and prints the table its timings
suggest.

int4/int8 (GPTQ, AWQ):
  gemv     up to 8 rows (quant_int_gemv.py): the packed weight streamed once, unpacked per
           row, FMA in registers, no tensor cores, split-K where the columns leave
           multiprocessors idle
  tiled    tensor cores (quant_int_tiled_gemm.py): one weight tile dequantized in registers
           per tl.dot, the weight read once per BLOCK_M rows (16..128 by M)
  dequant  the dense weight written once per call, then cuBLAS
int4 only, on the Marlin layout (the weight repacked at load for a cheap unpack: a table holds
paths of one layout, since a layer keeps one):
  marlin          quant_int_marlin_gemm.py: the unpack in PTX (lop3/prmt/fma.bf16x2), tensor
                  cores with the weight tile as the wgmma's register operand, any M (16-row
                  padding on the dot's narrow side), split-K for few output tiles
  marlin-dequant  the dense weight written once per call from that layout, then cuBLAS
  marlin-gemv     up to 4 rows (quant_int_marlin_gemv.py): each column's words streamed along
                  K, the same PTX unpack, FMA in fp32, no tensor cores, split-K reduced in the
                  same launch

FP8 on fp8 tensor cores (compute capability >= 8.9); the w8a8 paths quantize the activations
per token (per 1x128 group for block-wise weights) at every call:
  w8a16-gemv   one-row products with one scale per weight row (per-tensor checkpoints): the
               bf16 GEMV (gemv.py) streaming the fp8 weight, widened by Triton's conversion,
               the scale applied to the fp32 sum
  w8a16-triton the weight-only kernel (quant_fp8_w8a16_gemm.py): activations as they are, the
               fp8 weight widened to bf16 in registers, split-K reduced in the same launch: one
               kernel per GEMM, where W8A8 runs the quantizer first
  w8a8-triton  the Triton W8A8 kernel (quant_fp8_w8a8_gemm.py)
  w8a8-cublas  cuBLAS's scaled GEMM (quant_fp8_scaled_mm.py) where it runs the layer's scales,
               else the Triton kernel
  dequant      the dense bf16 weight written once per call (quant_fp8_dequant.py), then
               cuBLAS's bf16 GEMM: block-wise weights at large M where this torch runs no
               block-wise cuBLAS recipe (activations unquantized)"""
from __future__ import annotations

# Measured on one H200 (torch 2.11, triton 3.6; `benchmarks/quant_gpu.sh`, commit e8a83c3,
# 2026-11-30): per 7B decoder layer (qkv + o + gate_up + down) in us, bf16 cuBLAS 130 at M=1,
# 131 at 4..64, 140 at 128, 206 at 256, 2973 at 4096.
# int4  gemv 101 at M=1 (decode 150, tiled 168, dequant 296); decode 158 at 4 (tiled 177);
#       tiled 171 / 263 at 16 / 64; dequant 302 / 349 / 2972 at 128 / 256 / 4096 (tiled 429 /
#       735 / 8992). The GEMV unpacks the weight again for every row: 291 at M=4.
# Session 5's H200 call (commit e42acd6, `benchmarks/quant_gemm_gpu.py --formats
# bf16,int4,fp8,fp8-block --rows 1,16,64,128 --sweep-marlin --sweep-w8a16`; bf16 132 / 136 / 137 /
# 145 at M = 1 / 16 / 64 / 128): the Marlin layout's kernel with 64-column tiles took 122 / 125 /
# 187 at 1 / 16 / 64 and 312 at 128 with the scale in the unpack (marlin-dequant 319 there),
# against the strips' best gemv 99, tiled 169 / 262, dequant 298. Session 6's call (`ROWS=1,4,64,128
# bash benchmarks/quant_marlin_gpu.sh`; bf16 132 / 133 / 137 / 146 at M = 1 / 4 / 64 / 128): the
# one-row GEMV on the Marlin layout 79 at M=1 (0.60x bf16), marlin with the tiles now in
# marlin_tiles 112 / 179 / 297 at 4 / 64 / 128 (marlin-dequant 313 / 316 / 319).
INT4_PATHS = ((1, "marlin-gemv"), (128, "marlin"), (None, "marlin-dequant"))
MARLIN_LAYOUT_PATHS = frozenset({"marlin", "marlin-dequant", "marlin-gemv"})
# int8  gemv 111 at M=1; decode 168 at 4; tiled 185 / 267 at 16 / 64; dequant 328 / 374 / 2968
#       at 128 / 256 / 4096.
# decode removed (a near-copy of tiled): 168 at M=4 against tiled's 177 (int4's, the call above).
# The strips layout's table: int8, and int4 whose groups the Marlin layout cannot take (no
# multiple of 16 features).
STRIPS_PATHS = ((1, "gemv"), (64, "tiled"), (None, "dequant"))
# fp8 per-tensor  Triton W8A8 96 / 99 / 126 at M = 1 / 16 / 64, cuBLAS 142 at 128 (session 5's
#                 call); the W8A16 kernel's best tiles 116 / 118 / 166 / 239: W8A8 wins at every M.
#                 Earlier: cuBLAS 164 / 1736 at 256 / 4096 (Triton 371 / 3820). Session 6's
#                 calls 3-4: w8a16-gemv 84 at M=1 with the bf16 GEMV's launch, 70 with FP8_KNOBS
#                 (W8A8 95, bf16 cuBLAS 132): batch-1 FP8 decoding 3.30 ms a token against bf16's
#                 4.11 with the former.
FP8_PATHS = ((1, "w8a16-gemv"), (64, "w8a8-triton"), (None, "w8a8-cublas"))
# fp8 128x128 blocks with cuBLAS's block-wise recipe: not measured (the H200's torch 2.11 has
# none); by the per-tensor timings, Triton for few rows.
FP8_BLOCK_PATHS = ((64, "w8a8-triton"), (None, "w8a8-cublas"))
# fp8 128x128 blocks without it: Triton W8A8 86 / 91 / 125 / 330 at M = 1 / 16 / 64 / 128, W8A16
# (3 stages) 127 / 129 / 171 / 256, dequant + cuBLAS 342 / 343 / 346 / 350 (session 5's call);
# earlier: dequant 391 / 3011 at 256 / 4096 (Triton W8A8 460 / 5756).
FP8_BLOCK_PATHS_NO_CUBLAS = ((64, "w8a8-triton"), (128, "w8a16-triton"), (None, "dequant"))


def reads_marlin_layout(table) -> bool:
    """Whether the table's paths read the Marlin layout (else the strips); never both."""
    marlin = {path in MARLIN_LAYOUT_PATHS for _, path in table}
    if len(marlin) > 1:
        raise ValueError(f"the table {table} mixes paths of the Marlin layout with others: a layer holds one layout")
    return marlin == {True}


def path_for(table, m: int) -> str:
    for bound, path in table:
        if bound is None or m <= bound:
            return path
    raise ValueError(f"the table {table} does not end with a (None, path) entry")
