"""The strip layout of int4/int8 weights (GPTQ and AWQ both load into it) that the GPU's
strips kernels read, its dequantizer, and the plain-torch reference of the checkpoint layout.

The checkpoint layout (the CPU path and the references read it):

  qweight int32 [K / (32 // bits), N]  input features packed along K, GPTQ's order (code j of
                                       word w is input feature w * (32 // bits) + j)
  scales, zeros [G, N]                 activation dtype; G = ceil(K / group_size)

  W[k, n] = (q[k, n] - zeros[k // group_size, n]) * scales[k // group_size, n];  y = x @ W

On the GPU the words are shuffled once at load into strips of `strip` output columns
(`to_strips`): int32 [ceil(N / strip), K / (32 // bits), strip], N padded with zero words. A
program of a kernel owns whole columns, so it streams one contiguous stretch of memory per
strip instead of a short run from each of K / 8 rows N words apart. The GEMV
(quant_int_gemv.py) and the tiled kernel (quant_int_tiled_gemm.py) read it; for large M
`dequantize_int_strips` writes the dense weight once per call for cuBLAS
(ember/quantization/gemm_paths.py picks by M). Act-order is handled by the caller, which
permutes the activations' columns to the sorted rows."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_packing import unpack_int32

__all__ = ["to_strips", "dequantize_int_strips", "dequantize_int", "int_gemm_ref"]


@triton.jit
def _dequantize_kernel(
    qw_ptr, s_ptr, z_ptr, w_ptr, N, K, stride_sg, stride_wk,
    BITS: tl.constexpr, GROUP_SIZE: tl.constexpr, STRIP: tl.constexpr, WORDS: tl.constexpr, BLOCK_N: tl.constexpr,
):
    PER_WORD: tl.constexpr = 32 // BITS
    offs_w = tl.program_id(0) * WORDS + tl.arange(0, WORDS)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    words_per_col = K // PER_WORD
    mask = (offs_w < words_per_col)[:, None] & (offs_n < N)[None, :]
    col = (offs_n // STRIP).to(tl.int64) * words_per_col * STRIP + offs_n % STRIP
    words = tl.load(qw_ptr + offs_w[:, None] * STRIP + col[None, :], mask=mask, other=0)
    for j in tl.static_range(PER_WORD):
        k = offs_w * PER_WORD + j
        at = (k // GROUP_SIZE)[:, None] * stride_sg + offs_n[None, :]
        zero = tl.load(z_ptr + at, mask=mask, other=0.0).to(tl.float32)
        scale = tl.load(s_ptr + at, mask=mask, other=0.0).to(tl.float32)
        w = (((words >> (j * BITS)) & ((1 << BITS) - 1)).to(tl.float32) - zero) * scale
        tl.store(w_ptr + k.to(tl.int64)[:, None] * stride_wk + offs_n[None, :], w.to(w_ptr.dtype.element_ty), mask=mask)


def dequantize_int_strips(qweight, scales, zeros, bits: int, group_size: int) -> torch.Tensor:
    """The dense W [K, N] in the scales' dtype from the strip layout: one pass, for cuBLAS."""
    require_triton()
    n, strip = scales.shape[1], qweight.shape[2]
    k = qweight.shape[1] * (32 // bits)
    w = torch.empty((k, n), dtype=scales.dtype, device=scales.device)
    words, block_n = 16, min(128, strip)
    grid = (triton.cdiv(qweight.shape[1], words), triton.cdiv(n, block_n))
    _dequantize_kernel[grid](qweight, scales, zeros, w, n, k, scales.stride(0), w.stride(0),
                             BITS=bits, GROUP_SIZE=min(group_size, k), STRIP=strip, WORDS=words, BLOCK_N=block_n)
    return w


def to_strips(qweight: torch.Tensor, strip: int) -> torch.Tensor:
    """[K / (32 // bits), N] packed words -> [ceil(N / strip), K / (32 // bits), strip]."""
    rows, n = qweight.shape
    padded = torch.nn.functional.pad(qweight, (0, -n % strip))
    return padded.reshape(rows, -1, strip).transpose(0, 1).contiguous()


def dequantize_int(qweight, scales, zeros, bits: int, group_size: int) -> torch.Tensor:
    """The dense W [K, N] (checkpoint layout, rows in the weight's order) in the scales' dtype."""
    codes = unpack_int32(qweight, bits, dim=0)
    group = torch.arange(codes.shape[0], device=codes.device) // group_size
    return (codes - zeros[group]) * scales[group]


def int_gemm_ref(x, qweight, scales, zeros, bits: int, group_size: int, perm=None) -> torch.Tensor:
    """The checkpoint layout; `perm`: act-order, qweight row r is input feature perm[r]."""
    if perm is not None:
        x = x[:, perm]
    return x @ dequantize_int(qweight, scales, zeros, bits, group_size).to(x.dtype)
