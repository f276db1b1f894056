"""GEMM with FP8 weights (W8A16): the fp8 weight is widened to the activation dtype inside the
tile loop and scaled per block, beside its plain-torch reference. One layout serves both FP8
checkpoint kinds (ember.quantization.fp8 builds it):

  weight fp8 [N, K]
  scale fp32 [S, ceil(K / block_k)]   per-tensor: one column, one row per fused part
  scale_row int32 [N]                 which scale row each output row uses

  W[n, k] = weight[n, k] * scale[scale_row[n], k // block_k];  y = x @ W.T
"""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_gemm_tiles import gemm_tiles

__all__ = ["fp8_gemm", "fp8_gemm_ref", "dequantize_fp8"]


@triton.jit
def _fp8_gemm_kernel(
    x_ptr, w_ptr, s_ptr, srow_ptr, out_ptr, M, N, K,
    stride_xm, stride_wn, stride_sr, stride_sk, stride_om,
    SCALE_BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, DOT_PREC: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask, n_mask = offs_m < M, offs_n < N
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    w_cols = w_ptr + offs_n.to(tl.int64)[None, :] * stride_wn
    s_rows = s_ptr + tl.load(srow_ptr + offs_n, mask=n_mask, other=0) * stride_sr
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        a = tl.load(x_rows + k[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        w = tl.load(w_cols + k[:, None], mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        # The tile lies in one scale block along K (gemm_tiles): scale after the dot.
        scale = tl.load(s_rows + (k0 // SCALE_BLOCK_K) * stride_sk, mask=n_mask, other=0.0)
        acc += tl.dot(a, w.to(a.dtype), input_precision=DOT_PREC) * scale[None, :]
    out = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def fp8_gemm(x, weight, scale, scale_row, block_k: int) -> torch.Tensor:
    """x [M, K] (unit stride on K) -> [M, N] in x's dtype; block_k >= K for one scale per row."""
    require_triton()
    m, k = x.shape
    n = weight.shape[0]
    assert weight.shape[1] == k and weight.stride(1) == 1 and x.stride(1) == 1
    assert scale.dtype == torch.float32 and scale_row.dtype == torch.int32
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    block_m, block_n, tile_k = gemm_tiles(m, k, block_k)
    # One scale column covers the row: read column 0 for every tile.
    stride_sk, scale_block_k = (scale.stride(1), block_k) if block_k < k else (0, tile_k)
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _fp8_gemm_kernel[grid](
        x, weight, scale, scale_row, out, m, n, k,
        x.stride(0), weight.stride(0), scale.stride(0), stride_sk, out.stride(0),
        SCALE_BLOCK_K=scale_block_k, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=tile_k,
        DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32", num_warps=4, num_stages=3,
    )
    return out


def dequantize_fp8(weight, scale, scale_row, block_k: int) -> torch.Tensor:
    """The dense W [N, K] in fp32."""
    column = torch.arange(weight.shape[1], device=weight.device) // block_k
    return weight.float() * scale[scale_row.long()][:, column]


def fp8_gemm_ref(x, weight, scale, scale_row, block_k: int) -> torch.Tensor:
    return x @ dequantize_fp8(weight, scale, scale_row, block_k).to(x.dtype).T
