"""The dense weight of an FP8 layer in the activation dtype, written in one pass, for large M:
cuBLAS's bf16 GEMM on it beats a W8A8 Triton kernel whose block-wise scales cuBLAS's scaled
GEMM does not run on that torch (the H200's torch 2.11: Triton 5964 us a 7B layer at M = 4096
against bf16's 2855), at the cost of writing and reading the bf16 copy once per call. The
layout is quant_fp8_gemm.py's:

  W[n, k] = weight[n, k] * scale[scale_row[n], k // block_k]"""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton

__all__ = ["dequantize_fp8_dense"]

_BLOCK_N, _BLOCK_K = 32, 128


@triton.jit
def _dequantize_kernel(w_ptr, s_ptr, srow_ptr, out_ptr, N, K, stride_wn, stride_sr, stride_sk, stride_on,
                       SCALE_BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    n_mask = offs_n < N
    mask = n_mask[:, None] & (offs_k < K)[None, :]
    w = tl.load(w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :], mask=mask, other=0.0)
    rows = tl.load(srow_ptr + offs_n, mask=n_mask, other=0)
    scale = tl.load(s_ptr + rows[:, None] * stride_sr + (offs_k // SCALE_BLOCK_K)[None, :] * stride_sk, mask=mask,
                    other=0.0)
    tl.store(out_ptr + offs_n.to(tl.int64)[:, None] * stride_on + offs_k[None, :],
             (w.to(tl.float32) * scale).to(out_ptr.dtype.element_ty), mask=mask)


def dequantize_fp8_dense(weight, scale, scale_row, block_k: int, dtype: torch.dtype) -> torch.Tensor:
    """weight fp8 [N, K] -> the dense W [N, K] in `dtype`; block_k >= K for one scale per row."""
    require_triton()
    n, k = weight.shape
    assert weight.stride(1) == 1 and scale.dtype == torch.float32 and scale_row.dtype == torch.int32
    out = torch.empty((n, k), dtype=dtype, device=weight.device)
    # One scale column covers the row: read column 0 everywhere.
    scale_block_k, stride_sk = (block_k, scale.stride(1)) if block_k < k else (1 << 20, 0)
    _dequantize_kernel[(triton.cdiv(n, _BLOCK_N), triton.cdiv(k, _BLOCK_K))](
        weight, scale, scale_row, out, n, k, weight.stride(0), scale.stride(0), stride_sk, out.stride(0),
        SCALE_BLOCK_K=scale_block_k, BLOCK_N=_BLOCK_N, BLOCK_K=_BLOCK_K, num_warps=4,
    )
    return out
