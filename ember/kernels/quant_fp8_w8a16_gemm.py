"""Weight-only FP8 GEMM for decode batches (W8A16) on tensor cores (its plain-torch reference:
quant_fp8_gemm.fp8_gemm_ref): the activations go in as they are (no quantizer kernel before it,
no e4m3 rounding of them), the fp8 e4m3 weight tile is widened to the activations' dtype in
registers (for bf16 by integer bit moves, _e4m3_to_bf16) and multiplied in that dtype with fp32
accumulation. Same weight layout as quant_fp8_gemm.py (per-tensor and block-wise checkpoints):

  weight fp8 [N, K], scale fp32 [S, ceil(K / block_k)], scale_row int32 [N]
  W[n, k] = weight[n, k] * scale[scale_row[n], k // block_k];  y = x @ W.T

One scale per row (block_k >= K: per-tensor, per-channel) scales the accumulator once at the
end; 128x128 blocks scale each K tile's product (acc += dot * scale[n block, k block]).

The product is computed transposed, y.T tile [BLOCK_N, BLOCK_M] = W tile @ x.T tile: the
weight, the operand that is widened in registers, is the MMA's A operand, which Hopper's
wgmma may read from registers (B must sit in shared memory), and the few rows of x pad only
the MMA's narrow side (16). K is split over programs where the output tiles alone leave
multiprocessors idle, reduced in the same launch (quant_split_k.py). The tiles are a
W8A16Tiles; benchmarks/quant_gemm_gpu.py --sweep-w8a16 times the alternatives."""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.quant_split_k import split_k_counters, split_k_plan, split_k_scratch, store_split_k

__all__ = ["W8A16Tiles", "DEFAULT_W8A16_TILES", "fp8_w8a16_gemm"]


class W8A16Tiles(NamedTuple):
    block_n: int          # weight rows per program (the MMA's M side: 64 fills a Hopper warpgroup)
    block_k: int          # K per tile; lowered to a divisor of the scale block when blocks are smaller
    num_warps: int
    num_stages: int       # weight tiles in flight per program (loads pipelined through shared memory)
    programs_per_sm: int  # split K until about this many programs per multiprocessor; 0: never split
    bit_widen: bool       # bf16 activations: widen with integer ops (_e4m3_to_bf16), not Triton's conversion


# 8 KiB fp8 weight tiles, three in flight, two programs per SM: on the H200 (session 5) three
# stages beat four at 64 and 128 rows (7B layers, 128x128 blocks: 171 / 256 us against 182 / 301),
# where the tables use this kernel.
DEFAULT_W8A16_TILES = W8A16Tiles(block_n=64, block_k=128, num_warps=4, num_stages=3, programs_per_sm=2,
                                 bit_widen=True)


@triton.jit
def _e4m3_to_bf16(w):
    """Exact e4m3 -> bf16 for four values per instruction group, on the integer units: Triton's
    conversion goes through f16 (cvt.rn.f16x2.e4m3x2, then one cvt.bf16.f16 per value), and
    conversions issue at a quarter of the integer rate on Hopper, which a weight-streaming kernel
    converting every weight feels. Each byte moves to the high byte of a 16-bit lane (prmt), its
    exponent and mantissa shift into bf16's fields beside the sign: that is the value times
    2^-120 (bf16's exponent bias is 127, e4m3's 7; subnormals included), and one bf16x2
    multiply by 2^120 (exact: a power of two, the result normal; an fma adding -0, which keeps
    the sign of zeros: sm_89 has no bf16x2 multiply) restores it. The two NaN codes become
    +-480 (checkpoints hold none). Measured on the H200 (session 6) where it did not win, so
    used nowhere else: the one-row GEMV over e4m3 weights (103 us a 7B layer against 85 with
    Triton's conversion) and the decode attention over an e4m3 cache (nano the same either way)."""
    return tl.inline_asm_elementwise(
        """{
        .reg .b32 lo, hi, t, bias, zero;
        mov.b32 bias, 0x7B807B80;
        mov.b32 zero, 0x80008000;
        prmt.b32 lo, $2, 0, 0x1404;
        prmt.b32 hi, $2, 0, 0x3424;
        shr.b32 t, lo, 4;
        and.b32 t, t, 0x07F007F0;
        and.b32 lo, lo, 0x80008000;
        or.b32 lo, lo, t;
        fma.rn.bf16x2 $0, lo, bias, zero;
        shr.b32 t, hi, 4;
        and.b32 t, t, 0x07F007F0;
        and.b32 hi, hi, 0x80008000;
        or.b32 hi, hi, t;
        fma.rn.bf16x2 $1, hi, bias, zero;
        }""", "=r,=r,r", [w.to(tl.uint8, bitcast=True)], dtype=tl.bfloat16, is_pure=True, pack=4)


@triton.jit
def _w8a16_kernel(
    x_ptr, w_ptr, s_ptr, srow_ptr, out_ptr, partial_ptr, counter_ptr, M, N, K, K_SPLIT, SPLIT_K,
    stride_xm, stride_wn, stride_sr, stride_sk, stride_om,
    SCALE_BLOCK_K: tl.constexpr, ROW_SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, BIT_WIDEN: tl.constexpr, DOT_PREC: tl.constexpr,
):
    pid_n, pid_m = tl.program_id(0), tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    n_mask, m_mask = offs_n < N, offs_m < M
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn
    x_cols = x_ptr + offs_m.to(tl.int64)[None, :] * stride_xm
    s_rows = s_ptr + tl.load(srow_ptr + offs_n, mask=n_mask, other=0) * stride_sr
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    k_begin = tl.program_id(2) * K_SPLIT
    for k0 in range(k_begin, tl.minimum(k_begin + K_SPLIT, K), BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        xt = tl.load(x_cols + k[:, None], mask=k_mask[:, None] & m_mask[None, :], other=0.0)
        w = tl.load(w_rows + k[None, :], mask=n_mask[:, None] & k_mask[None, :], other=0.0)
        if BIT_WIDEN:
            w = _e4m3_to_bf16(w)
        else:
            w = w.to(xt.dtype)
        if ROW_SCALE:
            acc = tl.dot(w, xt, acc, input_precision=DOT_PREC)
        else:
            # The tile lies in one scale block along K (BLOCK_K divides it).
            scale = tl.load(s_rows + (k0 // SCALE_BLOCK_K) * stride_sk, mask=n_mask, other=0.0)
            acc += tl.dot(w, xt, input_precision=DOT_PREC) * scale[:, None]
    if ROW_SCALE:
        acc *= tl.load(s_rows, mask=n_mask, other=0.0)[:, None]
    tile = offs_m.to(tl.int64)[None, :] * N + offs_n[:, None]
    store_split_k(acc, out_ptr + offs_m.to(tl.int64)[None, :] * stride_om + offs_n[:, None],
                  n_mask[:, None] & m_mask[None, :], partial_ptr + tile, M * N,
                  counter_ptr + pid_m * tl.num_programs(0) + pid_n, SPLIT_K)


@functools.lru_cache(maxsize=None)
def _shared_memory(device: torch.device) -> int:
    """Bytes of shared memory a block may use, as Triton checks them (227 KiB on an H200, 99 KiB
    on Ada); no limit under the interpreter."""
    if device.type != "cuda":
        return 1 << 40
    index = device.index if device.index is not None else torch.cuda.current_device()
    return triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]


def pipeline_stages(tiles: W8A16Tiles, block_m: int, tile_k: int, x_bytes: int, shared_memory: int) -> int:
    """The tiles' stages, fewer where they would not fit: Triton keeps stages - 1 weight and
    activation tiles in shared memory, plus the fp32 accumulator for the epilogue's layout
    change (that matches what it reports for sm_90). Large M in fp32 needs it: 128 rows of
    fp32 activations are 64 KiB a 128-deep tile."""
    per_stage = tile_k * (block_m * x_bytes + tiles.block_n)
    fitting = 1 + (shared_memory - 4 * tiles.block_n * block_m) // per_stage
    return max(2, min(tiles.num_stages, fitting))


def _tile_k(tiles: W8A16Tiles, k: int, block_k: int) -> int:
    if block_k >= k:
        return tiles.block_k
    tile_k = min(tiles.block_k, block_k & -block_k)  # the largest power of two dividing the block
    if tile_k < 16:
        raise ValueError(f"FP8 scale blocks of {block_k} input features are not supported by the W8A16 kernel "
                         "(its tiles need a multiple of 16)")
    return tile_k


def fp8_w8a16_gemm(x, weight, scale, scale_row, block_k: int, tiles: W8A16Tiles = DEFAULT_W8A16_TILES):
    """x [M, K] (unit stride on K) -> [M, N] in x's dtype; block_k >= K for one scale per row."""
    require_triton()
    m, k = x.shape
    n = weight.shape[0]
    assert weight.dtype == torch.float8_e4m3fn and weight.shape[1] == k and weight.stride(1) == 1
    assert x.stride(1) == 1 and scale.dtype == torch.float32 and scale_row.dtype == torch.int32
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    # The MMA's narrow side is at least 16; more rows share each weight tile up to 128.
    block_m = min(128, max(16, triton.next_power_of_2(m)))
    tile_k = _tile_k(tiles, k, block_k)
    grid_n, grid_m, k_tiles = triton.cdiv(n, tiles.block_n), triton.cdiv(m, block_m), triton.cdiv(k, tile_k)
    split, tiles_per_split = split_k_plan(k_tiles, grid_n * grid_m, tiles.programs_per_sm, x.device)
    k_split = tiles_per_split * tile_k
    partial = split_k_scratch(split, out)
    scale_block_k, stride_sk = (block_k, scale.stride(1)) if block_k < k else (k, 0)
    _w8a16_kernel[(grid_n, grid_m, split)](
        x, weight, scale, scale_row, out, partial, split_k_counters(x.device), m, n, k, k_split, split,
        x.stride(0), weight.stride(0), scale.stride(0), stride_sk, out.stride(0),
        SCALE_BLOCK_K=scale_block_k, ROW_SCALE=block_k >= k, BLOCK_M=block_m, BLOCK_N=tiles.block_n,
        BLOCK_K=tile_k,
        # PTX, for bf16 on the GPU only (Triton's interpreter runs fp32 and fp16 activations).
        BIT_WIDEN=tiles.bit_widen and x.dtype == torch.bfloat16 and x.is_cuda,
        DOT_PREC="ieee" if x.dtype == torch.float32 else "tf32",
        num_warps=tiles.num_warps, num_stages=pipeline_stages(tiles, block_m, tile_k, x.element_size(),
                                                                 _shared_memory(x.device)),
    )
    return out
