"""Tensor-core GEMM with int4/int8 weights for mid-size M (decode batches of 2..64 rows,
short prefill chunks): each [BLOCK_K, BLOCK_N] tile of the packed weight is loaded once as
[BLOCK_K / (32 // bits), BLOCK_N] words of the strip layout (ember/kernels/quant_int_strips.py's
`to_strips`), unpacked and dequantized in registers to the activations' dtype, and multiplied
with one tl.dot of the activation tile (fp32 accumulation). The weight is read once per
BLOCK_M rows, instead of the dense weight written and read back per call (dequantize, then
cuBLAS), which the largest M keep.

Unpacking keeps the words' order: the codes of a [words, columns] tile, broadcast against
their shifts to [words, codes per word, columns], reshape to [K rows, columns] with row
w * (32 // bits) + j = code j of word w, GPTQ's order. The K tile shrinks to lie in one group
(groups of 32 and 64 too): q - zero is then an exact small integer in bf16/fp16 and the scale
multiplies the tile's product once per column. Only groups of no multiple of 16 features
(none that GPTQ or AWQ exports use) give each row its group's scale and zero, at 2 stages: the
[BLOCK_K, BLOCK_N] scales and zeros each stage buffers did not fit sm_90's shared memory at 3.
Act-order is the caller's (it permutes the activations' columns)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_gemm_tiles import num_sms

__all__ = ["TiledTiles", "tiled_tiles", "fit_to_group", "int_tiled_gemm"]


@dataclass(frozen=True)
class TiledTiles:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def tiled_tiles(m: int) -> TiledTiles:
    """Tiles by M: the row tile grows with M so the weight is read once per BLOCK_M rows."""
    if m <= 16:
        return TiledTiles(16, 64, 128, 4, 4)
    if m <= 32:
        return TiledTiles(32, 64, 128, 4, 4)
    if m <= 64:
        return TiledTiles(64, 128, 64, 4, 3)
    return TiledTiles(128, 128, 64, 8, 3)


def fit_to_group(tiles: TiledTiles, group: int, k: int) -> tuple[TiledTiles, bool]:
    """(the tiles for groups of `group` input features, whether a K tile lies in one group)."""
    if group >= k:
        return tiles, True
    if group & -group >= 16:  # the largest power of two dividing the group
        return replace(tiles, block_k=min(tiles.block_k, group & -group)), True
    return replace(tiles, num_stages=2), False


_PROGRAMS_PER_SM = 2


@triton.jit
def _int_tiled_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, out_ptr, M, N, K, K_SPLIT,
    stride_xm, stride_sg, stride_om, stride_os,
    BITS: tl.constexpr, GROUP_SIZE: tl.constexpr, STRIP: tl.constexpr, TILE_SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT_PREC: tl.constexpr,
):
    PER_WORD: tl.constexpr = 32 // BITS
    WORDS: tl.constexpr = BLOCK_K // PER_WORD
    pid_n, pid_k, pid_m = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = tl.arange(0, WORDS)
    offs_k = tl.arange(0, BLOCK_K)
    shifts = tl.arange(0, PER_WORD) * BITS
    m_mask, n_mask = offs_m < M, offs_n < N
    words_per_col = K // PER_WORD
    # Word (w, n) of the strip layout; BLOCK_N divides STRIP.
    col = (offs_n // STRIP).to(tl.int64) * words_per_col * STRIP + offs_n % STRIP
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    k_begin = pid_k * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        w_idx = k0 // PER_WORD + offs_w
        words = tl.load(qw_ptr + w_idx[:, None] * STRIP + col[None, :],
                        mask=(w_idx < words_per_col)[:, None] & n_mask[None, :], other=0)
        codes = tl.reshape((words[:, None, :] >> shifts[None, :, None]) & ((1 << BITS) - 1), [BLOCK_K, BLOCK_N])
        a = tl.load(x_rows + k[None, :], mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        if TILE_SCALE:  # the tile lies in one group: one scale and zero per column
            g = k0 // GROUP_SIZE
            zero = tl.load(z_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            scale = tl.load(s_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            w = (codes.to(tl.float32) - zero[None, :]).to(a.dtype)
            acc += tl.dot(a, w, input_precision=DOT_PREC) * scale[None, :]
        else:
            at = (k // GROUP_SIZE)[:, None] * stride_sg + offs_n[None, :]
            gmask = k_mask[:, None] & n_mask[None, :]
            zero = tl.load(z_ptr + at, mask=gmask, other=0.0).to(tl.float32)
            scale = tl.load(s_ptr + at, mask=gmask, other=0.0).to(tl.float32)
            w = ((codes.to(tl.float32) - zero) * scale).to(a.dtype)
            acc += tl.dot(a, w, input_precision=DOT_PREC)
    out = out_ptr + pid_k * stride_os + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def int_tiled_gemm(x, qweight, scales, zeros, bits: int, group_size: int):
    """x [M, K] (unit stride on K, columns in the weight's row order) @ the strip-shuffled
    weight (`to_strips`) -> [M, N] in x's dtype, N = scales.shape[1]."""
    require_triton()
    m, k = x.shape
    n, strip = scales.shape[1], qweight.shape[2]
    per_word = 32 // bits
    tiles = tiled_tiles(m)
    assert qweight.shape[1] * per_word == k and qweight.is_contiguous() and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.stride() == zeros.stride() and scales.stride(1) == 1
    assert strip % tiles.block_n == 0
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    group = min(group_size, k)
    tiles, tile_scale = fit_to_group(tiles, group, k)
    assert tiles.block_k % per_word == 0 and tiles.block_k >= 16
    k_tiles = triton.cdiv(k, tiles.block_k)
    grid_n, grid_m = triton.cdiv(n, tiles.block_n), triton.cdiv(m, tiles.block_m)
    # Split K only where the output tiles leave multiprocessors idle.
    split = max(1, min(k_tiles, triton.cdiv(_PROGRAMS_PER_SM * num_sms(x.device), grid_n * grid_m)))
    k_split = triton.cdiv(k_tiles, split) * tiles.block_k
    split = triton.cdiv(k, k_split)
    # Partial sums of a split K go to fp32 slices, summed after.
    out = torch.empty((split, m, n), dtype=torch.float32 if split > 1 else x.dtype, device=x.device)
    _int_tiled_kernel[(grid_n, split, grid_m)](
        x, qweight, scales, zeros, out, m, n, k, k_split,
        x.stride(0), scales.stride(0), out.stride(1), out.stride(0),
        BITS=bits, GROUP_SIZE=group, STRIP=strip, TILE_SCALE=tile_scale,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k,
        DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps, num_stages=tiles.num_stages,
    )
    return out[0] if split == 1 else out.sum(0).to(x.dtype)
