"""W8A8 FP8 GEMM on the fp8 tensor cores (compute capability >= 8.9), beside its plain-torch
reference: activations quantized per token in groups (ember/kernels/quant_fp8_act.py), weights
as the FP8 checkpoints store them, in the one layout of quant_fp8_gemm.py:

  a fp8 [M, K], a_scale fp32 [M, ceil(K / block_k)]   (any strides)
  weight fp8 [N, K], scale fp32 [S, ceil(K / block_k)], scale_row int32 [N]

  y[m, n] = sum over K blocks b of a_scale[m, b] * scale[scale_row[n], b] * (a[m, b] . weight[n, b])

block_k >= K: one scale per token and per weight row (per-tensor checkpoints). The tile's dot
product runs on fp8 operands with fp32 accumulation; the scales are applied once per K block.
This is the Triton path for the block-wise (128x128) checkpoints; cuBLAS's scaled GEMM
(quant_fp8_scaled_mm.py) is the other, and ember/quantization/gemm_paths.py picks by M. Where
the output tiles alone leave multiprocessors idle (decode: one row tile; the 7B `qkv`, `o` and
`down` shapes have 56..72 column tiles for 132 multiprocessors) K is split over programs, their
fp32 partial sums added by the tile's last program in the same launch (quant_split_k.py), so
that enough programs stream the weight."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_split_k import split_k_counters, split_k_plan, split_k_scratch, store_split_k

__all__ = ["fp8_w8a8_gemm", "fp8_w8a8_gemm_ref"]


@triton.jit
def _w8a8_kernel(
    a_ptr, as_ptr, w_ptr, s_ptr, srow_ptr, out_ptr, partial_ptr, counter_ptr, M, N, K, K_SPLIT, SPLIT_K,
    stride_am, stride_asm, stride_asb, stride_wn, stride_sr, stride_sb, stride_om,
    SCALE_BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask, n_mask = offs_m < M, offs_n < N
    a_rows = a_ptr + offs_m.to(tl.int64)[:, None] * stride_am
    w_cols = w_ptr + offs_n.to(tl.int64)[None, :] * stride_wn
    as_rows = as_ptr + offs_m * stride_asm
    s_rows = s_ptr + tl.load(srow_ptr + offs_n, mask=n_mask, other=0) * stride_sr
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    k_begin = tl.program_id(2) * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        a = tl.load(a_rows + k[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        w = tl.load(w_cols + k[:, None], mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        b = k0 // SCALE_BLOCK_K  # the tile lies in one scale block (BLOCK_K divides it)
        a_scale = tl.load(as_rows + b * stride_asb, mask=m_mask, other=0.0)
        w_scale = tl.load(s_rows + b * stride_sb, mask=n_mask, other=0.0)
        acc += tl.dot(a, w) * a_scale[:, None] * w_scale[None, :]
    store_split_k(acc, out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :],
                  m_mask[:, None] & n_mask[None, :], partial_ptr + offs_m.to(tl.int64)[:, None] * N + offs_n[None, :],
                  M * N, counter_ptr + tl.program_id(0) * tl.num_programs(1) + tl.program_id(1), SPLIT_K)


_PROGRAMS_PER_SM = 2


def _tiles(m: int, k: int, block_k: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps): the K tile is at most 128 and divides the scale block."""
    tile_k = 128 if block_k >= k else min(128, block_k & -block_k)
    if tile_k < 32:
        raise ValueError(f"FP8 scale blocks of {block_k} input features are not supported by the W8A8 "
                         "kernel (its fp8 tiles need a multiple of 32)")
    if m <= 16:
        return 16, 64, tile_k, 4
    if m <= 64:
        return 64, 64, tile_k, 4
    return 128, 128, tile_k, 8


def fp8_w8a8_gemm(a, a_scale, weight, scale, scale_row, block_k: int, out_dtype: torch.dtype) -> torch.Tensor:
    """-> [M, N] in `out_dtype`; block_k >= K for per-token / per-row scales."""
    require_triton()
    m, k = a.shape
    n = weight.shape[0]
    assert a.dtype == weight.dtype == torch.float8_e4m3fn and a.stride(1) == 1 and weight.stride(1) == 1
    assert weight.shape[1] == k and scale.dtype == a_scale.dtype == torch.float32 and scale_row.dtype == torch.int32
    if m == 0:
        return torch.empty((m, n), dtype=out_dtype, device=a.device)
    block_m, block_n, tile_k, warps = _tiles(m, k, block_k)
    grid_m, grid_n, k_tiles = triton.cdiv(m, block_m), triton.cdiv(n, block_n), triton.cdiv(k, tile_k)
    split, tiles_per_split = split_k_plan(k_tiles, grid_m * grid_n, _PROGRAMS_PER_SM, a.device)
    k_split = tiles_per_split * tile_k
    out = torch.empty((m, n), dtype=out_dtype, device=a.device)
    partial = split_k_scratch(split, out)
    # One scale column covers the row: read column 0 for every tile.
    scale_block_k, stride_asb, stride_sb = ((block_k, a_scale.stride(1), scale.stride(1)) if block_k < k
                                            else (tile_k, 0, 0))
    _w8a8_kernel[(grid_m, grid_n, split)](
        a, a_scale, weight, scale, scale_row, out, partial, split_k_counters(a.device), m, n, k, k_split, split,
        a.stride(0), a_scale.stride(0), stride_asb, weight.stride(0), scale.stride(0), stride_sb, out.stride(0),
        SCALE_BLOCK_K=scale_block_k, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=tile_k,
        num_warps=warps, num_stages=3,
    )
    return out


def fp8_w8a8_gemm_ref(a, a_scale, weight, scale, scale_row, block_k: int, out_dtype: torch.dtype) -> torch.Tensor:
    columns = torch.arange(a.shape[1], device=a.device) // block_k
    x = a.float() * a_scale[:, columns]
    w = weight.float() * scale[scale_row.long()][:, columns]
    return (x @ w.T).to(out_dtype)
