"""GEMV-class product with int4/int8 weights for decode batches of at most 8 rows: the packed
weight streamed once at close to memory bandwidth, no tensor cores (a tensor-core tile is at
least 16 rows, so at M = 1 it would multiply 15 rows of padding). Reads the strip layout of
ember/kernels/quant_int_strips.py (`to_strips`): a program owns BLOCK_N columns of one strip and
one row of the activations, so each step loads WORDS rows of BLOCK_N contiguous int32 words,
coalesced, and the K range is split over programs where the columns alone leave the GPU's
multiprocessors idle. The programs of the rows of one column block are launched next to each
other (the row is the grid's fastest axis), so rows after the first read those words from L2.

Per word the codes are turned into floats without an int-to-float conversion (a quarter-rate
instruction on Hopper): code | 0x4B000000 is the fp32 2**23 + code, exact. The zero point is
applied once per word through the sum of the activations it multiplies,

  sum_k x[k] * s * (q[k] - z) = s * (sum_k x[k] * q[k] - z * sum_k x[k]),

and the products accumulate in fp32 over [words, columns], summed over words only at the end.
One row per program keeps every tensor 2-D in the words' own layout: compiled for sm_90, the
loop holds no layout conversion (a [rows, words, columns] accumulator needed one per code, each
through shared memory). Act-order is the caller's: it permutes the activations' columns into
the weight's sorted row order (ember/quantization/int_linear.py)."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel
from ember.kernels.quant_gemm_tiles import num_sms

__all__ = ["GEMV_MAX_ROWS", "int_gemv"]

GEMV_MAX_ROWS = 8
_BLOCK_N = 64
# A K step of 128 int4 (64 int8) features lies in one group of 128: one scale per column.
_WORDS = 16
# A GEMV only streams, without software pipelining: resident programs keep the loads in flight.
_PROGRAMS_PER_SM = 8


@triton.jit
def _int_gemv_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, out_ptr, N, K, K_SPLIT,
    stride_xm, stride_sg, stride_om, stride_os,
    BITS: tl.constexpr, GROUP_SIZE: tl.constexpr, STRIP: tl.constexpr, TILE_SCALE: tl.constexpr,
    BLOCK_N: tl.constexpr, WORDS: tl.constexpr, USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    PER_WORD: tl.constexpr = 32 // BITS
    BLOCK_K: tl.constexpr = WORDS * PER_WORD
    row, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = tl.arange(0, WORDS)
    n_mask = offs_n < N
    words_per_col = K // PER_WORD
    # Word (w, n) of the strip layout; BLOCK_N divides STRIP.
    col = (offs_n // STRIP).to(tl.int64) * words_per_col * STRIP + offs_n % STRIP
    x_row = x_ptr + row.to(tl.int64) * stride_xm
    acc = tl.zeros([WORDS, BLOCK_N], dtype=tl.float32)
    k_begin = pid_k * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        w_idx = k0 // PER_WORD + offs_w
        w_mask = w_idx < words_per_col
        tile_mask = w_mask[:, None] & n_mask[None, :]
        words = tl.load(qw_ptr + w_idx[:, None] * STRIP + col[None, :], mask=tile_mask, other=0)
        if TILE_SCALE:  # the step lies in one group: one scale and zero per column
            g = k0 // GROUP_SIZE
            scale = tl.load(s_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
            zero = tl.load(z_ptr + g * stride_sg + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        else:  # a word lies in one group (GROUP_SIZE is a multiple of PER_WORD)
            at = ((w_idx * PER_WORD) // GROUP_SIZE)[:, None] * stride_sg + offs_n[None, :]
            scale = tl.load(s_ptr + at, mask=tile_mask, other=0.0).to(tl.float32)
            zero = tl.load(z_ptr + at, mask=tile_mask, other=0.0).to(tl.float32)
        dot = tl.zeros([WORDS, BLOCK_N], dtype=tl.float32)
        x_sum = tl.zeros([WORDS], dtype=tl.float32)
        for j in tl.static_range(PER_WORD):
            xj = tl.load(x_row + w_idx * PER_WORD + j, mask=w_mask, other=0.0).to(tl.float32)
            codes = (((words >> (j * BITS)) & ((1 << BITS) - 1)) | 0x4B000000).to(tl.float32, bitcast=True) \
                - 8388608.0
            dot += xj[:, None] * codes
            x_sum += xj
        acc += (dot - x_sum[:, None] * zero) * scale
    out = out_ptr + pid_k * stride_os + row.to(tl.int64) * stride_om + offs_n
    tl.store(out, tl.sum(acc, axis=0).to(out_ptr.dtype.element_ty), mask=n_mask)


def int_gemv(x, qweight, scales, zeros, bits: int, group_size: int) -> torch.Tensor:
    """x [M <= 8, K] (unit stride on K, columns in the weight's row order) @ the strip-shuffled
    weight (`to_strips`) -> [M, N] in x's dtype, N = scales.shape[1]."""
    require_triton()
    m, k = x.shape
    n, strip = scales.shape[1], qweight.shape[2]
    per_word = 32 // bits
    group = min(group_size, k)
    assert m <= GEMV_MAX_ROWS, f"the GEMV kernel takes at most {GEMV_MAX_ROWS} rows, got {m}"
    assert qweight.shape[1] * per_word == k and qweight.is_contiguous() and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.stride() == zeros.stride() and scales.stride(1) == 1
    assert strip % _BLOCK_N == 0 and group % per_word == 0
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    block_k = _WORDS * per_word
    k_steps, grid_n = triton.cdiv(k, block_k), triton.cdiv(n, _BLOCK_N)
    split = max(1, min(k_steps, triton.cdiv(_PROGRAMS_PER_SM * num_sms(x.device), grid_n * m)))
    k_split = triton.cdiv(k_steps, split) * block_k
    split = triton.cdiv(k, k_split)
    # Partial sums of a split K go to fp32 slices, summed after.
    out = torch.empty((split, m, n), dtype=torch.float32 if split > 1 else x.dtype, device=x.device)
    _int_gemv_kernel[(m, grid_n, split)](
        x, qweight, scales, zeros, out, n, k, k_split,
        x.stride(0), scales.stride(0), out.stride(1), out.stride(0),
        BITS=bits, GROUP_SIZE=group, STRIP=strip, TILE_SCALE=group % block_k == 0,
        BLOCK_N=_BLOCK_N, WORDS=_WORDS, num_warps=4, **pdl_launch(x.device),
    )
    return out[0] if split == 1 else out.sum(0).to(x.dtype)
