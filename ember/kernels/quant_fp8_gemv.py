"""GEMV-class product with FP8 weights for decode batches of at most 4 rows (W8A16): each fp8
weight is read once, widened and scaled in registers and multiplied with the activations in
fp32, without tensor cores (their fp8 tiles are 16 rows, the activations would have to be
quantized first: one more kernel per layer and e4m3's rounding, for rows that are read once).
Same weight layout as quant_fp8_gemm.py (per-tensor and block-wise checkpoints):

  weight fp8 [N, K], scale fp32 [S, ceil(K / block_k)], scale_row int32 [N]
  W[n, k] = weight[n, k] * scale[scale_row[n], k // block_k];  y = x @ W.T

A program owns BLOCK_N rows of the weight and one row of the activations, and loads
[BLOCK_N, BLOCK_K] tiles along K, each weight row a contiguous run of BLOCK_K bytes; the
programs of the activation rows of one weight block are launched next to each other (the row
is the grid's fastest axis), so rows after the first read those bytes from L2. K is split over
programs where the weight rows alone leave multiprocessors idle, the fp32 partial sums added
after. Products accumulate over [BLOCK_N, BLOCK_K], summed over K once at the end; the weight
tile keeps its load layout (compiled for sm_90, the loop's one layout conversion is the
activations' 128 values; a [rows, BLOCK_N, BLOCK_K] accumulator took eleven)."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_gemm_tiles import num_sms

__all__ = ["FP8_GEMV_MAX_ROWS", "fp8_gemv"]

FP8_GEMV_MAX_ROWS = 4
# A GEMV only streams, without software pipelining: resident programs keep the loads in flight.
_PROGRAMS_PER_SM = 8
_BLOCK_N = 32


@triton.jit
def _fp8_gemv_kernel(
    x_ptr, w_ptr, s_ptr, srow_ptr, out_ptr, N, K, K_SPLIT,
    stride_xm, stride_wn, stride_sr, stride_sk, stride_om, stride_os,
    SCALE_BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    row, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    n_mask = offs_n < N
    x_row = x_ptr + row.to(tl.int64) * stride_xm
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn
    s_rows = s_ptr + tl.load(srow_ptr + offs_n, mask=n_mask, other=0) * stride_sr
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    k_begin = pid_k * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        w = tl.load(w_rows + k[None, :], mask=n_mask[:, None] & k_mask[None, :], other=0.0).to(tl.float32)
        # The tile lies in one scale block along K (BLOCK_K divides it).
        scale = tl.load(s_rows + (k0 // SCALE_BLOCK_K) * stride_sk, mask=n_mask, other=0.0)
        x = tl.load(x_row + k, mask=k_mask, other=0.0).to(tl.float32)
        acc += x[None, :] * w * scale[:, None]
    out = out_ptr + pid_k * stride_os + row.to(tl.int64) * stride_om + offs_n
    tl.store(out, tl.sum(acc, axis=1).to(out_ptr.dtype.element_ty), mask=n_mask)


def fp8_gemv(x, weight, scale, scale_row, block_k: int) -> torch.Tensor:
    """x [M <= 4, K] (unit stride on K) -> [M, N] in x's dtype; block_k >= K for one scale per row."""
    require_triton()
    m, k = x.shape
    n = weight.shape[0]
    assert m <= FP8_GEMV_MAX_ROWS, f"the FP8 GEMV kernel takes at most {FP8_GEMV_MAX_ROWS} rows, got {m}"
    assert weight.shape[1] == k and weight.stride(1) == 1 and x.stride(1) == 1
    assert scale.dtype == torch.float32 and scale_row.dtype == torch.int32
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    # One scale column covers the row: read column 0 for every tile.
    scale_block_k, stride_sk = (block_k, scale.stride(1)) if block_k < k else (1 << 20, 0)
    # The K tile: 128 bytes of each weight row, a divisor of the scale block.
    tile_k = min(128, scale_block_k & -scale_block_k)
    if tile_k < 16:
        raise ValueError(f"FP8 scale blocks of {block_k} input features are not supported by the GEMV kernel")
    k_tiles, grid_n = triton.cdiv(k, tile_k), triton.cdiv(n, _BLOCK_N)
    split = max(1, min(k_tiles, triton.cdiv(_PROGRAMS_PER_SM * num_sms(x.device), grid_n * m)))
    k_split = triton.cdiv(k_tiles, split) * tile_k
    split = triton.cdiv(k, k_split)
    # Partial sums of a split K go to fp32 slices, summed after.
    out = torch.empty((split, m, n), dtype=torch.float32 if split > 1 else x.dtype, device=x.device)
    _fp8_gemv_kernel[(m, grid_n, split)](
        x, weight, scale, scale_row, out, n, k, k_split,
        x.stride(0), weight.stride(0), scale.stride(0), stride_sk, out.stride(1), out.stride(0),
        SCALE_BLOCK_K=scale_block_k, BLOCK_N=_BLOCK_N, BLOCK_K=tile_k, num_warps=4,
    )
    return out[0] if split == 1 else out.sum(0).to(x.dtype)
