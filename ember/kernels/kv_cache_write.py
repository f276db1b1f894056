"""Scatter new K/V rows into the paged cache by slot (block_id * block_size + offset). An fp8
cache (kv_cache_dtype fp8_e4m3 / fp8_e5m2) saturates at its format's largest value rather than
overflowing, and needs no scale."""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.step_memo import StepMemo

__all__ = ["write_kv_cache", "write_kv_cache_ref"]


@triton.jit
def _write_kv_kernel(
    k_ptr, v_ptr, k_cache_ptr, v_cache_ptr, slot_ptr, num_heads,
    stride_kt, stride_kh, stride_vt, stride_vh,
    stride_kcb, stride_kcs, stride_kch, stride_vcb, stride_vcs, stride_vch,
    BLOCK_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr,
    BLOCK_H: tl.constexpr, FP8_MAX: tl.constexpr,
):
    tok = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + tok)
    if slot < 0:  # padding token (e.g. CUDA-graph batch fill)
        return
    blk = slot // BLOCK_SIZE
    off = slot % BLOCK_SIZE
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    mask = (offs_h < num_heads)[:, None] & (offs_d < HEAD_DIM)[None, :]
    k = tl.load(k_ptr + tok * stride_kt + offs_h[:, None] * stride_kh + offs_d[None, :], mask=mask)
    v = tl.load(v_ptr + tok * stride_vt + offs_h[:, None] * stride_vh + offs_d[None, :], mask=mask)
    if FP8_MAX > 0:
        k = tl.clamp(k.to(tl.float32), -FP8_MAX, FP8_MAX)
        v = tl.clamp(v.to(tl.float32), -FP8_MAX, FP8_MAX)
    kc = k_cache_ptr + blk * stride_kcb + off * stride_kcs
    vc = v_cache_ptr + blk * stride_vcb + off * stride_vcs
    tl.store(kc + offs_h[:, None] * stride_kch + offs_d[None, :], k.to(k_cache_ptr.dtype.element_ty), mask=mask)
    tl.store(vc + offs_h[:, None] * stride_vch + offs_d[None, :], v.to(v_cache_ptr.dtype.element_ty), mask=mask)


def write_kv_cache(k, v, k_cache, v_cache, slot_mapping) -> None:
    """In place: k_cache/v_cache[slot] = k/v[token] for every slot >= 0.

    k, v: [num_tokens, num_kv_heads, head_dim], any token/head strides (e.g.
    views into a fused qkv output); caches [num_blocks, block_size, H, D] with
    unit stride on the last dim; slot_mapping int64 [num_tokens]. No host sync."""
    require_triton()
    num_tokens, num_heads, head_dim = k.shape
    if num_tokens == 0:
        return
    block_size = k_cache.shape[1]
    assert k.stride(-1) == 1 and v.stride(-1) == 1
    assert k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1
    d_pad = triton.next_power_of_2(head_dim)
    block_h = min(triton.next_power_of_2(num_heads), max(1, 4096 // d_pad))
    grid = (num_tokens, triton.cdiv(num_heads, block_h))
    _write_kv_kernel[grid](
        k, v, k_cache, v_cache, slot_mapping, num_heads,
        k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        BLOCK_SIZE=block_size, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, BLOCK_H=block_h,
        FP8_MAX=_fp8_max(k_cache.dtype), num_warps=4,
    )


def _fp8_max(dtype: torch.dtype) -> float:
    """The largest finite value of an fp8 cache dtype; 0.0 (no clamp) for wider ones."""
    return torch.finfo(dtype).max if dtype.itemsize == 1 else 0.0


def write_kv_cache_ref(k, v, k_cache, v_cache, slot_mapping) -> None:
    """Torch reference (host sync on the mask; fine for CPU and tests), also the CPU's writer:
    a step without padding slots (the usual case) skips the boolean indexing."""
    every_slot, keep = _padding_free((slot_mapping,))
    slots = slot_mapping if every_slot else slot_mapping[keep]
    block_size = k_cache.shape[1]
    limit = _fp8_max(k_cache.dtype)
    for src, cache in ((k, k_cache), (v, v_cache)):
        rows = src if every_slot else src[keep]
        rows = (rows.clamp(-limit, limit) if limit else rows).to(cache.dtype)
        if cache.is_contiguous():
            flat = cache.view(-1, *cache.shape[2:])
            if limit:  # index_copy_ has no fp8 kernel on the CPU: copy the bytes
                flat, rows = flat.view(torch.uint8), rows.view(torch.uint8)
            flat.index_copy_(0, slots, rows)
        else:
            cache[slots // block_size, slots % block_size] = rows


def _build_padding_free(slot_mapping):
    """(whether every slot is a real one, the mask of real ones): once per step, for all layers."""
    keep = slot_mapping >= 0
    return bool(keep.all()), keep


_padding_free = StepMemo(_build_padding_free)
