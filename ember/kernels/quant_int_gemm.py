"""GEMM with int4/int8 weights (GPTQ and AWQ both load into this one layout), beside its
plain-torch reference.

The checkpoint layout (the CPU path and the references read it):

  qweight int32 [K / (32 // bits), N]  input features packed along K, GPTQ's order (code j of
                                       word w is input feature w * (32 // bits) + j)
  scales, zeros [G, N]                 activation dtype; G = ceil(K / group_size)

  W[k, n] = (q[k, n] - zeros[k // group_size, n]) * scales[k // group_size, n];  y = x @ W

On the GPU the words are shuffled once at load into strips of `strip` output columns
(`to_strips`): int32 [ceil(N / strip), K / (32 // bits), strip], N padded with zero words. A
program of the kernel owns whole columns, so it streams one contiguous stretch of memory per
strip instead of a short run from each of K / 8 rows N words apart. The kernel reads each
word once: the j-th code of every word in a [words, columns] tile is a [words, columns] slab
of input features j, j + 32 // bits, ..., multiplied by the matching strided slice of x, so
the codes are never reshaped. The kernel runs the decode shape of work (small M: BLOCK_M 16
and split-K, so that enough programs stream the weight); for larger M `dequantize_int_strips`
writes the dense weight once per call for cuBLAS, which measured faster than any M tiling of
this kernel (ember/quantization/gemm_paths.py picks by M). Act-order is handled by the
caller, which permutes the activations' columns to the sorted rows. The GEMV
(quant_int_gemv.py) and the tiled kernel (quant_int_tiled_gemm.py) read the same layout and
now take the decode and mid-size rows; this kernel stays until the GPU times them against it."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_gemm_tiles import num_sms
from ember.kernels.quant_packing import unpack_int32

__all__ = ["IntTiles", "DECODE_TILES", "int_gemm", "dequantize_int_strips", "to_strips",
           "int_gemm_ref", "dequantize_int"]


@dataclass(frozen=True)
class IntTiles:
    block_m: int
    block_n: int
    block_k: int       # input features per step: 32 // bits codes of block_k / (32 // bits) words
    split_k: bool      # spread K over programs until about `programs_per_sm` per multiprocessor
    num_warps: int = 4
    num_stages: int = 3


# The fastest of benchmarks/quant_gemm_gpu.py's sweep on an H200 (int4, 7B shapes: 148 us per
# decoder layer at M = 1 where BLOCK_K 256 took 371 and BLOCK_N 128 did not compile). A K tile
# of 128 lies in one group of 128, so the scale comes once per tile (TILE_SCALE); it also keeps
# the per-feature scale path (groups of 32, 64) within shared memory: 156 KiB in fp32 at 3
# stages on sm_90, where BLOCK_K 256 needed 312 KiB of the 227 allowed
# (tests/kernels/test_quant_gemm_shared_memory.py).
DECODE_TILES = IntTiles(block_m=16, block_n=64, block_k=128, split_k=True)
_PROGRAMS_PER_SM = 2


@triton.jit
def _int_gemm_kernel(
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
    m_mask, n_mask = offs_m < M, offs_n < N
    words_per_col = K // PER_WORD
    # Word (w, n) of the strip layout; BLOCK_N divides STRIP.
    col = (offs_n // STRIP).to(tl.int64) * words_per_col * STRIP + offs_n % STRIP
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    k_begin = pid_k * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        w_idx = k0 // PER_WORD + offs_w
        w_mask = w_idx < words_per_col
        words = tl.load(qw_ptr + w_idx[:, None] * STRIP + col[None, :], mask=w_mask[:, None] & n_mask[None, :],
                        other=0)
        if TILE_SCALE:  # the tile lies in one group: one scale and zero per column
            g = k0 // GROUP_SIZE
            zero = tl.load(z_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            tile = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for j in tl.static_range(PER_WORD):
            k = w_idx * PER_WORD + j
            a = tl.load(x_rows + k[None, :], mask=m_mask[:, None] & w_mask[None, :], other=0.0)
            codes = ((words >> (j * BITS)) & ((1 << BITS) - 1)).to(tl.float32)
            if TILE_SCALE:
                # q - zero is a small integer, exact in fp16/bf16: the scale comes after the dot.
                tile += tl.dot(a, (codes - zero[None, :]).to(a.dtype), input_precision=DOT_PREC)
            else:
                at = (k // GROUP_SIZE)[:, None] * stride_sg + offs_n[None, :]
                gmask = w_mask[:, None] & n_mask[None, :]
                zero_k = tl.load(z_ptr + at, mask=gmask, other=0.0).to(tl.float32)
                scale_k = tl.load(s_ptr + at, mask=gmask, other=0.0).to(tl.float32)
                acc += tl.dot(a, ((codes - zero_k) * scale_k).to(a.dtype), input_precision=DOT_PREC)
        if TILE_SCALE:
            acc += tile * tl.load(s_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + pid_k * stride_os + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def int_gemm(x, qweight, scales, zeros, bits: int, group_size: int, tiles: IntTiles = DECODE_TILES):
    """x [M, K] (unit stride on K, columns already in the weight's row order) @ the strip-
    shuffled weight (`to_strips`) -> [M, N] in x's dtype, N = scales.shape[1]."""
    require_triton()
    m, k = x.shape
    n, strip = scales.shape[1], qweight.shape[2]
    per_word = 32 // bits
    assert qweight.shape[1] * per_word == k and qweight.is_contiguous() and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.stride() == zeros.stride() and scales.stride(1) == 1
    assert strip % tiles.block_n == 0 and tiles.block_k % (16 * per_word) == 0
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    group = min(group_size, k)
    k_tiles = triton.cdiv(k, tiles.block_k)
    grid_n, grid_m = triton.cdiv(n, tiles.block_n), triton.cdiv(m, tiles.block_m)
    split = 1
    if tiles.split_k:
        split = max(1, min(k_tiles, triton.cdiv(_PROGRAMS_PER_SM * num_sms(x.device), grid_n * grid_m)))
    k_split = triton.cdiv(k_tiles, split) * tiles.block_k
    split = triton.cdiv(k, k_split)
    # Partial sums of a split K go to fp32 slices, summed after.
    out = torch.empty((split, m, n), dtype=torch.float32 if split > 1 else x.dtype, device=x.device)
    _int_gemm_kernel[(grid_n, split, grid_m)](
        x, qweight, scales, zeros, out, m, n, k, k_split,
        x.stride(0), scales.stride(0), out.stride(1), out.stride(0),
        BITS=bits, GROUP_SIZE=group, STRIP=strip, TILE_SCALE=group >= k or group % tiles.block_k == 0,
        BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k,
        DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps, num_stages=tiles.num_stages,
    )
    return out[0] if split == 1 else out.sum(0).to(x.dtype)


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
