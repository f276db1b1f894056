"""Marlin-style tensor-core GEMM with int4 weights (GPTQ, AWQ), for every M from decode batches
of one row to prefill chunks: reads the layout of quant_int_marlin_layout.py, written at load.

It computes out^T = W^T @ x^T: the dequantized weight tile [BLOCK_N, BLOCK_K] is the dot's
first operand and the activations [BLOCK_K, BLOCK_M] its second. On Hopper the first operand
of a wgmma may come from registers, where the unpack leaves the weight, while the second is
read from shared memory, where the software pipeline (num_stages) already put the activations;
and the weight's N fills the wgmma's 64-row side while the few rows of a decode batch sit on
its narrow side (8..256), so M = 1 pads to 16 rows of a cheap dimension instead of 64.

Per K tile: one load of [BLOCK_N, BLOCK_K / 8] words (each column's words contiguous), the
unpack of quant_int_marlin_unpack.py (PTX shift/lop3/fma on CUDA: q - zero exact in bf16), one
tl.dot, and the scale, one per column and group, applied to the dot's [BLOCK_N, BLOCK_M]
result rather than to the [BLOCK_N, BLOCK_K] weights: a K tile lies in one group (BLOCK_K
divides the group size; groups of 32 and 64 shrink it). The zero point goes in the unpack's
fma (free: it subtracts the float bias anyway) instead of through a per-group row-sum of x.
`scale_in_unpack` tiles instead scale each weight in the unpack (one fma per two weights), so
the dots chain their accumulator over K and a wgmma can overlap the next tile's unpack:
fewer instructions against more overlap, for the GPU sweep to decide.

Where the output tiles leave multiprocessors idle (few rows, narrow layers), K is split over
programs into fp32 partial sums, added by each tile's last program in the same launch
(quant_split_k.py): no second kernel in a decode step's graph. Act-order is the caller's: it
permutes the activations' columns into the weight's sorted row order (int_linear.py)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_int_marlin_unpack import unpack_asm, unpack_int4
from ember.kernels.quant_split_k import split_k_counters, split_k_plan, split_k_scratch, store_split_k

__all__ = ["MarlinTiles", "marlin_tiles", "marlin_gemm"]


@dataclass(frozen=True)
class MarlinTiles:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    programs_per_sm: int  # split K until about this many programs per multiprocessor; 0: never
    scale_in_unpack: bool = False


def marlin_tiles(m: int) -> MarlinTiles:
    """Tiles by M, from the H200 sweeps (7B layers, `quant_gemm_gpu.py --sweep-marlin`). Session 5:
    64-column tiles won at 1, 16 and 64 rows (122 / 125 / 187 us a layer against 135 / 142 / 253
    with 128), the scale applied in the unpack at 128 (312 against 364). Session 6: split K to ~4
    programs a multiprocessor at 4 and 64 rows (112 / 179 against 123 / 188), and 64-row tiles at
    128 (297 against 314); 32 rows not measured."""
    if m <= 16:
        return MarlinTiles(16, 64, 128, 4, 4, 4)
    if m <= 32:
        return MarlinTiles(32, 64, 128, 4, 4, 4)
    if m <= 64:
        return MarlinTiles(64, 64, 128, 4, 3, 4)
    return MarlinTiles(64, 128, 64, 8, 3, 1, scale_in_unpack=True)


def fit_to_group(tiles: MarlinTiles, group: int, k: int) -> MarlinTiles:
    """The tiles with a K tile inside one group of `group` input features."""
    if group >= k:
        return tiles
    if group % 16:
        raise ValueError(f"the int4 tensor-core kernel needs groups of a multiple of 16 input features, got {group}")
    return replace(tiles, block_k=min(tiles.block_k, group & -group))  # the largest power of two dividing it


@triton.jit
def _marlin_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, out_ptr, partial_ptr, counter_ptr, M, N, K, TILES_PER_SPLIT,
    stride_xm, stride_qn, stride_sg, stride_om,
    SPLIT_K: tl.constexpr, GROUP_SIZE: tl.constexpr, SCALE_IN_UNPACK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    EVEN_K: tl.constexpr, ASM: tl.constexpr, BIAS: tl.constexpr, DOT_PREC: tl.constexpr,
):
    WORDS: tl.constexpr = BLOCK_K // 8
    # M is the fastest axis: the programs of one weight tile run together and share its read.
    pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = tl.arange(0, WORDS)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask, n_mask = offs_m < M, offs_n < N
    words_per_col = K // 8
    w_rows = qw_ptr + offs_n.to(tl.int64)[:, None] * stride_qn
    x_cols = x_ptr + offs_m.to(tl.int64)[None, :] * stride_xm
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    tile_begin = pid_k * TILES_PER_SPLIT
    # Counted in tiles, so the compiler knows k0 is a multiple of BLOCK_K: aligned vector loads.
    for tile in range(tile_begin, tl.minimum(tile_begin + TILES_PER_SPLIT, tl.cdiv(K, BLOCK_K))):
        k0 = tile * BLOCK_K
        w_idx = k0 // 8 + offs_w
        k = k0 + offs_k
        if EVEN_K:  # no K mask: the loads stay 16-byte vectors (a mask would cut them to its own runs)
            words = tl.load(w_rows + w_idx[None, :], mask=n_mask[:, None], other=0)
            xt = tl.load(x_cols + k[:, None], mask=m_mask[None, :], other=0.0)
        else:
            words = tl.load(w_rows + w_idx[None, :], mask=n_mask[:, None] & (w_idx < words_per_col)[None, :],
                            other=0)
            xt = tl.load(x_cols + k[:, None], mask=(k < K)[:, None] & m_mask[None, :], other=0.0)
        g = k0 // GROUP_SIZE
        zero = tl.load(z_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        scale = tl.load(s_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        w = unpack_int4(words, zero, scale, xt.dtype, BLOCK_N, BLOCK_K, SCALE_IN_UNPACK, ASM, BIAS)
        if SCALE_IN_UNPACK:
            acc = tl.dot(w, xt, acc, input_precision=DOT_PREC)
        else:
            acc += tl.dot(w, xt, input_precision=DOT_PREC) * scale[:, None]
    store_split_k(acc, out_ptr + offs_m.to(tl.int64)[None, :] * stride_om + offs_n[:, None],
                  n_mask[:, None] & m_mask[None, :], partial_ptr + offs_m.to(tl.int64)[None, :] * N + offs_n[:, None],
                  M * N, counter_ptr + pid_m * tl.num_programs(1) + pid_n, SPLIT_K)


def marlin_gemm(x, qweight, scales, zeros, group_size: int, tiles: MarlinTiles | None = None) -> torch.Tensor:
    """x [M, K] (unit stride on K, columns in the weight's row order) @ the Marlin-layout weight
    (int32 [N, K / 8]) -> [M, N] in x's dtype. `tiles`: marlin_tiles(M) unless given (the
    benchmark's sweep); K tiles shrink to the group either way."""
    require_triton()
    m, k = x.shape
    n = qweight.shape[0]
    assert qweight.shape[1] * 8 == k and qweight.stride(1) == 1 and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.shape[1] == n
    assert scales.stride() == zeros.stride() and scales.stride(1) == 1
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    group = min(group_size, k)
    tiles = fit_to_group(tiles or marlin_tiles(m), group, k)
    k_tiles = triton.cdiv(k, tiles.block_k)
    grid_m, grid_n = triton.cdiv(m, tiles.block_m), triton.cdiv(n, tiles.block_n)
    split, tiles_per_split = split_k_plan(k_tiles, grid_m * grid_n, tiles.programs_per_sm, x.device)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    partial = split_k_scratch(split, out)
    asm, bias = unpack_asm(x, tiles.scale_in_unpack)
    _marlin_kernel[(grid_m, grid_n, split)](
        x, qweight, scales, zeros, out, partial, split_k_counters(x.device), m, n, k, tiles_per_split,
        x.stride(0), qweight.stride(0), scales.stride(0), out.stride(0),
        SPLIT_K=split, GROUP_SIZE=group, SCALE_IN_UNPACK=tiles.scale_in_unpack,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k,
        EVEN_K=k % tiles.block_k == 0, ASM=asm, BIAS=bias, DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps, num_stages=tiles.num_stages,
    )
    return out
