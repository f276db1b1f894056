"""One-row product (decode at batch 1, and up to 4 rows) with int4 weights in the Marlin
layout (quant_int_marlin_layout.py): no tensor cores, so M = 1 multiplies no padding rows (the
Marlin GEMM pads it to 16) and the packed weight is streamed once at close to memory bandwidth.

In that layout each output column's words run contiguously along K (int32 [N, K / 8], the
row-major shape of nn.Linear's own weight), so a program owns BLOCK_N columns and walks their
rows in chunks of WORDS words (a [BLOCK_N, WORDS] load: WORDS * 4 contiguous bytes per column,
16-byte vectors per thread), as the bf16 GEMV (gemv.py) walks a dense weight. The chunk is
loaded as [BLOCK_N, groups, words of a group], so the zero and scale of a (column, group) are
one value broadcast over the group's words, and a word's eight activations are one 16-byte
load (bf16), split feature by feature. Each weight multiplies its activation in fp32, the
products summed over the group (acc_group = sum (q - z) * x), then scaled once per column and
group (acc += acc_group * scale). Two unpacks, for the GPU sweep to decide:
- quant_int_marlin_unpack.py's PTX (bf16, fp16): per two codes a shift, lop3 and one
  fma.bf16x2 that subtracts 128 + zero, q - z exact in half precision, then converted to fp32;
- the fp32 extraction (also the fp32 and interpreter path): per code a shift and one lop3 that
  put its nibble under fp32's exponent of 128, giving 128 + q, no conversion; the zero and the
  bias leave once per group and column, (128 + z) * sum x.
Triton pipelines no load that feeds no dot, so each program loads the next step's words before
it multiplies this step's (`prefetch`): two steps in flight. Compiled for sm_90 by Triton 3.9's
ptxas (no GPU), the default tiles' K loop runs about 5.2 SASS instructions per weight with
either unpack (6.3 with a 2-byte load per activation), in 96 registers a thread (72 and 127
without the prefetch, PTX and fp32).
Where the column blocks alone leave multiprocessors idle (qkv, o and down of a 7B layer), K
is split over programs and the partial sums reduced in the same launch (quant_split_k.py).
Rows of a small batch are the grid's fastest axis: the programs of one column block run
together and all but the first read its words from L2. Act-order is the caller's: it permutes
the activations' columns into the weight's sorted row order (int_linear.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel
from ember.kernels.quant_int_marlin_unpack import unpack_asm
from ember.kernels.quant_split_k import split_k_counters, split_k_plan, split_k_scratch, store_split_k

__all__ = ["MARLIN_GEMV_MAX_ROWS", "MarlinGemvTiles", "MARLIN_GEMV_TILES", "marlin_gemv"]

MARLIN_GEMV_MAX_ROWS = 4


@dataclass(frozen=True)
class MarlinGemvTiles:
    block_n: int          # output columns per program
    words: int            # int32 words per column per K step (8 features each); a power of two
    num_warps: int
    programs_per_sm: int  # split K until about this many programs per multiprocessor; 0: never
    # quant_int_marlin_unpack.py's PTX for bf16 and fp16 (q - z in half-precision pairs, converted
    # to fp32 per weight), or the fp32 extraction (128 + q, the zero through the sum of x)
    ptx_unpack: bool = True
    prefetch: bool = True  # load the next K step's words before multiplying this one's


# Session 6's H200 sweep (`quant_gemm_gpu.py --rows 1,4,64,128 --sweep-marlin`, 7B layers at
# M=1): 16 columns of 64 words a step, split K to ~8 programs a multiprocessor, and no prefetch
# (79 us a layer against 84 with it; qkv 9.0, gate_up 37.7, down 24.1 us): the loads of the
# next step only took registers from the programs that would have hidden the latency anyway.
MARLIN_GEMV_TILES = MarlinGemvTiles(block_n=16, words=64, num_warps=4, programs_per_sm=8, prefetch=False)


@triton.jit
def _activations(x_at, x_mask, MASK_K: tl.constexpr):
    """The activations of each word's eight features, x_at [GROUPS, SUB] pointing at feature 0
    (x_mask: the words inside K): one 16-byte load per word in bf16, split feature by feature ->
    eight fp32 [1, GROUPS, SUB] (broadcast over the columns) and their sum per group [GROUPS]."""
    eight = tl.arange(0, 8)[None, None, :]
    if MASK_K:
        x8 = tl.load(x_at[:, :, None] + eight, mask=x_mask[:, :, None], other=0.0).to(tl.float32)
    else:
        x8 = tl.load(x_at[:, :, None] + eight).to(tl.float32)
    # Feature 4a + 2b + c at [a, b, c]: each split takes the last axis.
    even, odd = tl.split(tl.reshape(x8, [x8.shape[0], x8.shape[1], 2, 2, 2]))
    e0, e1 = tl.split(even)
    o0, o1 = tl.split(odd)
    x0, x4 = tl.split(e0)
    x2, x6 = tl.split(e1)
    x1, x5 = tl.split(o0)
    x3, x7 = tl.split(o1)
    return (x0[None, :, :], x1[None, :, :], x2[None, :, :], x3[None, :, :], x4[None, :, :], x5[None, :, :],
            x6[None, :, :], x7[None, :, :], tl.sum(tl.sum(x8, 2), 1))


@triton.jit
def _biased(words, shift: tl.constexpr):
    """128 + the code at bit `shift` of each word (a shift and one lop3: its nibble moved to bits
    16..19 and OR-ed with fp32's exponent of 128), fp32."""
    if shift < 16:
        at16 = words << (16 - shift)
    elif shift > 16:
        at16 = words >> (shift - 16)  # arithmetic: the sign's copies land above bit 19
    else:
        at16 = words
    return ((at16 & 0x000F0000) | 0x43000000).to(tl.float32, bitcast=True)


@triton.jit
def _group_dots(words, neg_zero, zero, x_at, x_mask, MASK_K: tl.constexpr, ASM: tl.constexpr):
    """words int32 [BLOCK_N, GROUPS, SUB], zero fp32 [BLOCK_N, GROUPS] (neg_zero: -(bias + zero)
    in the activations' dtype, [BLOCK_N, GROUPS, 1], for the PTX), x_at and x_mask as
    _activations takes them -> sum over each group's words of (q - z) * x, fp32 [BLOCK_N,
    GROUPS]. One return for both branches: compiled Triton wants every return of a function to
    agree in type, even across a constexpr branch."""
    x0, x1, x2, x3, x4, x5, x6, x7, x_sum = _activations(x_at, x_mask, MASK_K)
    if ASM == "":
        # Feature 2i in nibble i, 2i + 1 in nibble i + 4 (MARLIN_ORDER). The products keep the
        # bias: sum (128 + q) * x - (128 + z) * sum x, the zero's share once per group and column
        # (fp32 keeps 16 of its 24 bits for q - z next to the 128).
        dot = _biased(words, 0) * x0
        dot += _biased(words, 16) * x1
        dot += _biased(words, 4) * x2
        dot += _biased(words, 20) * x3
        dot += _biased(words, 8) * x4
        dot += _biased(words, 24) * x5
        dot += _biased(words, 12) * x6
        dot += _biased(words, 28) * x7
        sums = tl.sum(dot, 2) - (zero + 128.0) * x_sum[None, :]
    else:  # q - z from the PTX, exact in bf16 / fp16
        c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
            ASM, "=h,=h,=h,=h,=h,=h,=h,=h,r,h", [words, neg_zero],
            dtype=(neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype,
                   neg_zero.dtype, neg_zero.dtype), is_pure=True, pack=1)
        dot = c0.to(tl.float32) * x0
        dot += c1.to(tl.float32) * x1
        dot += c2.to(tl.float32) * x2
        dot += c3.to(tl.float32) * x3
        dot += c4.to(tl.float32) * x4
        dot += c5.to(tl.float32) * x5
        dot += c6.to(tl.float32) * x6
        dot += c7.to(tl.float32) * x7
        sums = tl.sum(dot, 2)
    return sums


@triton.jit
def _k_step(acc, words, k0, x_row, z_ptr, s_ptr, offs_n, n_mask, word, K, stride_sg, GROUP_SIZE: tl.constexpr,
            GROUPS: tl.constexpr, SUB: tl.constexpr, MASK_K: tl.constexpr, ASM: tl.constexpr, BIAS: tl.constexpr):
    """acc [BLOCK_N, GROUPS] + the scaled group sums of the K step at feature k0, whose words
    are loaded. MASK_K: the step runs past K."""
    w_idx = k0 // 8 + word
    sub_k = k0 + tl.arange(0, GROUPS) * (SUB * 8)  # each sub-block's first feature
    at = (sub_k // GROUP_SIZE)[None, :] * stride_sg + offs_n[:, None]
    if MASK_K:
        gz_mask = n_mask[:, None] & (sub_k < K)[None, :]
    else:
        gz_mask = n_mask[:, None]
    zero = tl.load(z_ptr + at, mask=gz_mask, other=0.0).to(tl.float32)
    scale = tl.load(s_ptr + at, mask=gz_mask, other=0.0).to(tl.float32)
    # 128 + z is exact in bf16 (1024 + z in fp16): the PTX's fma subtracts it from 128 + q.
    neg_zero = (-(zero + BIAS)).to(x_row.dtype.element_ty)[:, :, None]
    return acc + _group_dots(words, neg_zero, zero, x_row + w_idx * 8, w_idx < K // 8, MASK_K, ASM) * scale


@triton.jit
def _marlin_gemv_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, out_ptr, partial_ptr, counter_ptr, M, N, K, STEPS_PER_SPLIT, SPLIT_K,
    stride_xm, stride_qn, stride_sg, stride_om,
    GROUP_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr, SUB: tl.constexpr,
    HAS_TAIL: tl.constexpr, PREFETCH: tl.constexpr, ASM: tl.constexpr, BIAS: tl.constexpr,
    USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    # A K step: GROUPS sub-blocks of SUB words, each inside one group of GROUP_SIZE features.
    BLOCK_K: tl.constexpr = GROUPS * SUB * 8
    WORDS: tl.constexpr = GROUPS * SUB
    row, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    # Word j of sub-block g of a step, relative to the step's first word.
    word = tl.arange(0, GROUPS)[:, None] * SUB + tl.arange(0, SUB)[None, :]
    w_rows = qw_ptr + offs_n.to(tl.int64)[:, None, None] * stride_qn + word[None, :, :]
    x_row = x_ptr + row.to(tl.int64) * stride_xm
    acc = tl.zeros([BLOCK_N, GROUPS], dtype=tl.float32)
    # This program's steps: whole steps first, with no mask along K (their word loads stay
    # 16-byte vectors, which such a mask would cut to its own runs), then the one that runs
    # past K if it has it.
    step_begin = pid_k * STEPS_PER_SPLIT
    step_end = tl.minimum(step_begin + STEPS_PER_SPLIT, tl.cdiv(K, BLOCK_K))
    whole = K // BLOCK_K
    whole_end = tl.minimum(step_end, whole)
    if PREFETCH:  # the next step's words in flight while this one's are multiplied
        # Masks all true or all false (word < WORDS): whether that step is one of this program's.
        words = tl.load(w_rows + step_begin * WORDS,
                        mask=n_mask[:, None, None] & (word < (whole_end - step_begin) * WORDS)[None], other=0)
        for step in range(step_begin, whole_end):
            ahead = tl.load(w_rows + (step + 1) * WORDS,
                            mask=n_mask[:, None, None] & (word < (whole_end - step - 1) * WORDS)[None], other=0)
            acc = _k_step(acc, words, step * BLOCK_K, x_row, z_ptr, s_ptr, offs_n, n_mask, word, K, stride_sg,
                          GROUP_SIZE, GROUPS, SUB, False, ASM, BIAS)
            words = ahead
    else:
        for step in range(step_begin, whole_end):
            words = tl.load(w_rows + step * WORDS, mask=n_mask[:, None, None], other=0)
            acc = _k_step(acc, words, step * BLOCK_K, x_row, z_ptr, s_ptr, offs_n, n_mask, word, K, stride_sg,
                          GROUP_SIZE, GROUPS, SUB, False, ASM, BIAS)
    if HAS_TAIL:
        if step_end > whole:
            words = tl.load(w_rows + whole * WORDS, mask=n_mask[:, None, None] & (whole * WORDS + word < K // 8)[None],
                            other=0)
            acc = _k_step(acc, words, whole * BLOCK_K, x_row, z_ptr, s_ptr, offs_n, n_mask, word, K, stride_sg,
                          GROUP_SIZE, GROUPS, SUB, True, ASM, BIAS)
    out = tl.sum(acc, 1)
    store_split_k(out, out_ptr + row.to(tl.int64) * stride_om + offs_n, n_mask, partial_ptr + row * N + offs_n,
                  M * N, counter_ptr + row * tl.num_programs(1) + pid_n, SPLIT_K)


def _sub_block(words: int, group: int, k: int) -> int:
    """Words per sub-block of a step: a power of two that divides both the step and a group's
    words, so a sub-block never straddles groups (the whole step where one group covers K)."""
    if group >= k:
        return words
    group_words = group // 8
    return min(words, group_words & -group_words)


def marlin_gemv(x, qweight, scales, zeros, group_size: int, tiles: MarlinGemvTiles | None = None) -> torch.Tensor:
    """x [M <= 4, K] (unit stride on K, columns in the weight's row order) @ the Marlin-layout
    weight (int32 [N, K / 8]) -> [M, N] in x's dtype. `tiles`: MARLIN_GEMV_TILES unless given
    (the benchmark's sweep)."""
    require_triton()
    tiles = tiles or MARLIN_GEMV_TILES
    m, k = x.shape
    n = qweight.shape[0]
    assert m <= MARLIN_GEMV_MAX_ROWS, f"the Marlin-layout GEMV takes at most {MARLIN_GEMV_MAX_ROWS} rows, got {m}"
    assert qweight.shape[1] * 8 == k and qweight.stride(1) == 1 and x.stride(1) == 1
    assert scales.shape == zeros.shape and scales.shape[1] == n
    assert scales.stride() == zeros.stride() and scales.stride(1) == 1
    group = min(group_size, k)
    if group < k and group % 8:
        raise ValueError(f"the Marlin-layout GEMV needs groups of a multiple of 8 input features, got {group}")
    if m == 0:
        return torch.empty((0, n), dtype=x.dtype, device=x.device)
    sub = _sub_block(tiles.words, group, k)
    block_k = tiles.words * 8
    steps, grid_n = triton.cdiv(k, block_k), triton.cdiv(n, tiles.block_n)
    split, steps_per_split = split_k_plan(steps, m * grid_n, tiles.programs_per_sm, x.device)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    partial = split_k_scratch(split, out)
    asm, bias = unpack_asm(x) if tiles.ptx_unpack else ("", 0.0)
    _marlin_gemv_kernel[(m, grid_n, split)](
        x, qweight, scales, zeros, out, partial, split_k_counters(x.device), m, n, k, steps_per_split, split,
        x.stride(0), qweight.stride(0), scales.stride(0), out.stride(0),
        GROUP_SIZE=group, BLOCK_N=tiles.block_n, GROUPS=tiles.words // sub, SUB=sub,
        HAS_TAIL=k % block_k != 0, PREFETCH=tiles.prefetch, ASM=asm, BIAS=bias, num_warps=tiles.num_warps,
        **pdl_launch(x.device),
    )
    return out
