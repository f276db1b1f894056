"""The dense W^T [N, K] of a Marlin-layout int4 weight (quant_int_marlin_layout.py), written
once per call for cuBLAS at large M (prefill chunks of hundreds of rows and more), where a GEMM
that reads the weight once is no longer bound by that read: the int4 path of last resort, as
dequantize_int_strips is for the strip layout. [N, K] row-major is nn.Linear's own weight
layout, so F.linear runs cuBLAS's usual kernel on it."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_int_marlin_unpack import unpack_asm, unpack_int4

__all__ = ["dequantize_marlin_t"]

_BLOCK_N, _BLOCK_K = 64, 128


@triton.jit
def _dequantize_kernel(
    qw_ptr, s_ptr, z_ptr, w_ptr, N, K, stride_qn, stride_sg, stride_wn,
    GROUP_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ASM: tl.constexpr, BIAS: tl.constexpr,
):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    k0 = tl.program_id(1) * BLOCK_K
    w_idx = k0 // 8 + tl.arange(0, BLOCK_K // 8)
    k = k0 + tl.arange(0, BLOCK_K)
    n_mask = offs_n < N
    words = tl.load(qw_ptr + offs_n.to(tl.int64)[:, None] * stride_qn + w_idx[None, :],
                    mask=n_mask[:, None] & (w_idx < K // 8)[None, :], other=0)
    g = k0 // GROUP_SIZE  # BLOCK_K divides the group
    zero = tl.load(z_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
    scale = tl.load(s_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
    w = unpack_int4(words, zero, scale, w_ptr.dtype.element_ty, BLOCK_N, BLOCK_K, True, ASM, BIAS)
    tl.store(w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn + k[None, :], w,
             mask=n_mask[:, None] & (k < K)[None, :])


def dequantize_marlin_t(qweight, scales, zeros, group_size: int) -> torch.Tensor:
    """W^T [N, K] in the scales' dtype."""
    require_triton()
    n, k = qweight.shape[0], qweight.shape[1] * 8
    group = min(group_size, k)
    block_k = _BLOCK_K if group >= k else min(_BLOCK_K, group & -group)
    assert block_k >= 16, f"groups of {group} input features are not supported"
    w = torch.empty((n, k), dtype=scales.dtype, device=scales.device)
    asm, bias = unpack_asm(w, scaled=True)
    grid = (triton.cdiv(n, _BLOCK_N), triton.cdiv(k, block_k))
    _dequantize_kernel[grid](qweight, scales, zeros, w, n, k, qweight.stride(0), scales.stride(0), w.stride(0),
                             GROUP_SIZE=group, BLOCK_N=_BLOCK_N, BLOCK_K=block_k, ASM=asm, BIAS=bias)
    return w
