"""y = x @ W^T (+ bias) for a few rows of x (M <= 4: batch-1 and tiny-batch decoding), with a
16/32-bit float weight, or an fp8 e4m3 one with a scale per output row (FP8 checkpoints' W8A16
path: the activations unquantized): a memory-bound product that should stream W at the GPU's
bandwidth. An e4m3 weight widens by Triton's conversion (on the H200 it beat the W8A16
kernel's integer bit moves here: 85 against 103 us a 7B layer), the row scale multiplies the
fp32 sum.

Each program owns BLOCK_N output features (2: thousands of programs, so every SM keeps several
resident and none idles at the tail) and walks K in long contiguous chunks of the weight's rows
(8 KiB a step), accumulating in fp32; x's rows are re-read from L2 by every program. The
product rounds once to x's dtype, as cuBLAS's. Linear uses it for one row only (FASTEST_ROWS):
on the H200 (benchmarks/gemv_gpu.py) it beat cuBLAS at M=1 on every 7B and Qwen3-0.6B projection
(1.01-1.53x on the 7B's, up to 4x on the small model's) and lost at M=2 and 4 on the 7B's; batch-1
decoding of the 7B shape went from 4.60 to 4.36 ms a token. EMBER_GEMV=0 turns it off."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel

__all__ = ["FASTEST_ROWS", "MAX_ROWS", "DEFAULT_KNOBS", "FP8_KNOBS", "GemvKnobs", "enabled", "gemv", "gemv_ref"]

MAX_ROWS = 4      # what the kernel computes
FASTEST_ROWS = 1  # where it measured faster than cuBLAS


class GemvKnobs(NamedTuple):
    block_n: int    # output features a program owns
    elements: int  # weight elements a program loads per K step (4096: 8 KiB in bf16)
    num_warps: int


# Session 6's H200 sweep (benchmarks/gemv_gpu.py --sweep: the 7B's four projections whole and
# halved for TP=2, 24 configs each): 2 rows a program on 8 KiB steps with 4 warps was the best
# single config, 177.7 us over the 8 shapes against 173.9 for each shape's own best and 189.1 for
# per-shape rules tried before it (gate_up 62.5 and down 35.7 us at best: 4.3 and 3.8 TB/s).
DEFAULT_KNOBS = GemvKnobs(2, 4096, 4)
# e4m3 weights (session 6's H200 call 4, `quant_gemm_gpu.py --formats bf16,fp8 --rows 1
# --sweep-w8a16`): 4 rows a program on 8 KiB steps took a 7B layer's four products in 70 us
# against DEFAULT_KNOBS' 84 (gate_up 36.2 against 43.6: 3.75 TB/s).
FP8_KNOBS = GemvKnobs(4, 8192, 4)


def enabled() -> bool:
    return os.environ.get("EMBER_GEMV", "1") != "0"


@triton.jit
def _weight_tile(w_rows, cols, row_ok, K, MASK_K: tl.constexpr):
    w_mask = row_ok[:, None] & (cols < K)[None, :] if MASK_K else row_ok[:, None]
    return tl.load(w_rows + cols[None, :], mask=w_mask, other=0.0)  # widened where it is used


@triton.jit
def _tile_product(acc, w_rows, x_rows, cols, row_ok, m_ok, K, M_PAD: tl.constexpr, MASK_K: tl.constexpr):
    return _accumulate(acc, _weight_tile(w_rows, cols, row_ok, K, MASK_K), x_rows, cols, m_ok, K, M_PAD, MASK_K)


@triton.jit
def _accumulate(acc, w, x_rows, cols, m_ok, K, M_PAD: tl.constexpr, MASK_K: tl.constexpr):
    """acc + the product of one K tile of weights w: [BLOCK_N] for one row of x (the common
    case: no third dimension to reduce over), [M_PAD, BLOCK_N] for more."""
    # One return statement: compiled Triton wants every return of a function to agree in type,
    # even across a branch on a constexpr.
    w = w.to(tl.float32)
    if M_PAD == 1:
        x = tl.load(x_rows + cols, mask=cols < K, other=0.0) if MASK_K else tl.load(x_rows + cols)
        acc += tl.sum(w * x.to(tl.float32)[None, :], 1)
    else:
        x_mask = m_ok[:, None] & (cols < K)[None, :] if MASK_K else m_ok[:, None]
        x = tl.load(x_rows[:, None] + cols[None, :], mask=x_mask, other=0.0).to(tl.float32)
        acc += tl.sum(w[None, :, :] * x[:, None, :], 2)
    return acc


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, s_ptr, b_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
                 M_PAD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, HAS_BIAS: tl.constexpr,
                 HAS_TAIL: tl.constexpr, ROW_SCALE: tl.constexpr, USE_PDL: tl.constexpr = False):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    offs_k = tl.arange(0, BLOCK_K)
    offs_m = tl.arange(0, M_PAD)
    m_ok = offs_m < M
    w_rows = w_ptr + rows.to(tl.int64)[:, None] * stride_wn
    if M_PAD == 1:
        x_rows = x_ptr
        acc = tl.zeros([BLOCK_N], tl.float32)
    else:
        x_rows = x_ptr + offs_m * stride_xm
        acc = tl.zeros([M_PAD, BLOCK_N], tl.float32)
    # Whole K tiles with no mask on K (a K the tile does not divide, as the 7B's 18,944, would
    # otherwise mask every load), then one masked tail tile.
    k_whole = (K // BLOCK_K) * BLOCK_K
    tail_start = k_whole
    if USE_PDL:
        # The weights never depend on an earlier kernel: the first tile (masked, in case it is
        # the tail) streams in while the previous kernel drains, before waiting to read x. It
        # waits in its own dtype: widened before the wait, an fp8 tile held four times the
        # registers across it and FP8 batch 1 took 3.21 ms a token with PDL, 2.86 without; held
        # as fp8, 2.70 with PDL against 2.84 without (H200, session 8).
        first = _weight_tile(w_rows, offs_k, row_ok, K, True)
        wait_for_previous_kernel(USE_PDL)
        acc = _accumulate(acc, first, x_rows, offs_k, m_ok, K, M_PAD, True)
        tail_start = tl.maximum(k_whole, BLOCK_K)  # a K within one tile: the tail tile is empty
    for k0 in range(BLOCK_K if USE_PDL else 0, k_whole, BLOCK_K):
        acc = _tile_product(acc, w_rows, x_rows, k0 + offs_k, row_ok, m_ok, K, M_PAD, False)
    if HAS_TAIL:
        acc = _tile_product(acc, w_rows, x_rows, tail_start + offs_k, row_ok, m_ok, K, M_PAD, True)
    if ROW_SCALE:  # [BLOCK_N] broadcasts over the rows of x too
        acc = acc * tl.load(s_ptr + rows, mask=row_ok, other=0.0)
    if M_PAD == 1:
        if HAS_BIAS:
            acc += tl.load(b_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        tl.store(y_ptr + rows, acc.to(y_ptr.dtype.element_ty), mask=row_ok)
    else:
        if HAS_BIAS:
            acc += tl.load(b_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[None, :]
        tl.store(y_ptr + offs_m[:, None] * stride_ym + rows[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=m_ok[:, None] & row_ok[None, :])


def gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
         knobs: GemvKnobs | None = None, row_scale: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] (M <= MAX_ROWS), weight [N, K], bias [N] or None -> [M, N] in x's dtype;
    row_scale fp32 [N] multiplies each output feature (an fp8 weight's dequantization).
    knobs: DEFAULT_KNOBS (FP8_KNOBS for fp8 weights) unless given (benchmarks/gemv_gpu.py --sweep
    times others)."""
    require_triton()
    m, k = x.shape
    n = weight.shape[0]
    assert m <= MAX_ROWS and weight.shape[1] == k and weight.stride(1) == 1
    assert row_scale is None or (row_scale.shape == (n,) and row_scale.dtype == torch.float32
                                 and row_scale.stride(0) == 1)
    if x.stride(1) != 1:
        x = x.contiguous()
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return y
    block_n, elements, num_warps = knobs or (FP8_KNOBS if weight.element_size() == 1 else DEFAULT_KNOBS)
    m_pad = triton.next_power_of_2(m)
    block_k = min(elements // (block_n * m_pad), triton.next_power_of_2(k))
    _gemv_kernel[(triton.cdiv(n, block_n),)](
        x, weight, row_scale if row_scale is not None else weight, bias if bias is not None else weight, y, m, n, k,
        x.stride(0), weight.stride(0), y.stride(0), M_PAD=m_pad, BLOCK_N=block_n, BLOCK_K=block_k,
        HAS_BIAS=bias is not None, HAS_TAIL=k % block_k != 0, ROW_SCALE=row_scale is not None,
        num_warps=num_warps, **pdl_launch(x.device),
    )
    return y


def gemv_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
             row_scale: torch.Tensor | None = None) -> torch.Tensor:
    if row_scale is None:
        return F.linear(x, weight, bias)
    return F.linear(x, (weight.float() * row_scale[:, None]).to(x.dtype), bias)
