"""GEMM with 4- or 8-bit integer weights (GPTQ and AWQ, which ember.quantization converts at
load into this one layout), dequantized inside the tile loop, beside its plain-torch reference.

  qweight int32 [K / (32 // bits), N]  input features packed along K, GPTQ's order
  scales, zeros [G, N]                 activation dtype; G = ceil(K / group_size)
  perm int64 [K] or None               GPTQ act-order: qweight row r is input feature perm[r]

  W[r, n] = (q[r, n] - zeros[r // group_size, n]) * scales[r // group_size, n]
  y = x[:, perm] @ W
"""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_gemm_tiles import gemm_tiles
from ember.kernels.quant_packing import unpack_int32

__all__ = ["int_gemm", "int_gemm_ref", "dequantize_int"]


@triton.jit
def _int_gemm_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, perm_ptr, out_ptr, M, N, K,
    stride_xm, stride_qk, stride_sg, stride_om,
    BITS: tl.constexpr, GROUP_SIZE: tl.constexpr, HAS_PERM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT_PREC: tl.constexpr,
):
    PER_WORD: tl.constexpr = 32 // BITS
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask, n_mask = offs_m < M, offs_n < N
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    shifts = ((offs_k % PER_WORD) * BITS)[:, None]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        cols = tl.load(perm_ptr + k, mask=k_mask, other=0) if HAS_PERM else k
        a = tl.load(x_rows + cols[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        # Each word serves PER_WORD consecutive rows of the tile (repeated loads hit the cache).
        words = tl.load(qw_ptr + (k // PER_WORD)[:, None] * stride_qk + offs_n[None, :],
                        mask=k_mask[:, None] & n_mask[None, :], other=0)
        codes = (words >> shifts) & ((1 << BITS) - 1)
        group = k0 // GROUP_SIZE  # the whole tile lies in one group (gemm_tiles)
        scale = tl.load(s_ptr + group * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        zero = tl.load(z_ptr + group * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        # q - zero is a small integer, exact in fp16/bf16: the scale is applied after the dot.
        w = (codes.to(tl.float32) - zero[None, :]).to(a.dtype)
        acc += tl.dot(a, w, input_precision=DOT_PREC) * scale[None, :]
    out = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def int_gemm(x, qweight, scales, zeros, bits: int, group_size: int, perm=None) -> torch.Tensor:
    """x [M, K] (unit stride on K) -> [M, N] in x's dtype."""
    require_triton()
    m, k = x.shape
    n = qweight.shape[1]
    assert qweight.shape[0] * (32 // bits) == k and qweight.stride(1) == 1 and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.stride() == zeros.stride() and scales.stride(1) == 1
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    block_m, block_n, block_k = gemm_tiles(m, k, group_size)
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _int_gemm_kernel[grid](
        x, qweight, scales, zeros, perm if perm is not None else qweight, out, m, n, k,
        x.stride(0), qweight.stride(0), scales.stride(0), out.stride(0),
        BITS=bits, GROUP_SIZE=min(group_size, k), HAS_PERM=perm is not None,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
        DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32", num_warps=4, num_stages=3,
    )
    return out


def dequantize_int(qweight, scales, zeros, bits: int, group_size: int) -> torch.Tensor:
    """The dense W [K, N] (rows in perm order) in the scales' dtype."""
    codes = unpack_int32(qweight, bits, dim=0)
    group = torch.arange(codes.shape[0], device=codes.device) // group_size
    return (codes - zeros[group]) * scales[group]


def int_gemm_ref(x, qweight, scales, zeros, bits: int, group_size: int, perm=None) -> torch.Tensor:
    if perm is not None:
        x = x[:, perm]
    return x @ dequantize_int(qweight, scales, zeros, bits, group_size).to(x.dtype)
