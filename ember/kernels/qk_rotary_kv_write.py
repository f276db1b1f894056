"""One launch per layer for what sits between the qkv projection and attention: Qwen3's
per-head RMSNorm of q and k (optional), the NeoX rotary of q and k, and the scatter of the new
k and v into the paged cache (optional). q and k are read straight out of the fused qkv
output (any token/head strides) and rewritten there in place, so no .contiguous() copy and no
separate norm, rotary and cache-write kernels run.

Rounding is the unfused path's, step by step: the norm rounds to the activation dtype before
* weight (as HF), that product is rounded, then rotated in fp32 and rounded once more; the
cache gets the rotated k as stored in q/k's dtype (then its own dtype; fp8 saturates)."""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.kv_cache_write import _fp8_max, write_kv_cache_ref
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel
from ember.kernels.rmsnorm import rms_norm_ref
from ember.kernels.rotary import apply_rotary_ref

__all__ = ["qk_rotary_kv_write", "qk_rotary_kv_write_ref"]


@triton.jit
def _prepare_heads(x_ptr, stride_h, num_heads, w_ptr, eps, cos, sin, cache_ptr, stride_ch,
                   HEAD_DIM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr,
                   HAS_NORM: tl.constexpr, WRITE: tl.constexpr, FP8_MAX: tl.constexpr):
    """Normalise (optionally) and rotate `num_heads` heads of one token in place; write them to
    `cache_ptr` (the token's cache slot) when WRITE. Heads are handled as two halves so the
    rotation pairs element i with i + HALF without a shuffle."""
    offs_r = tl.arange(0, HALF)
    for h0 in range(0, num_heads, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        mask = (offs_h < num_heads)[:, None]
        p1 = x_ptr + offs_h[:, None] * stride_h + offs_r[None, :]
        x1 = tl.load(p1, mask=mask, other=0.0)
        x2 = tl.load(p1 + HALF, mask=mask, other=0.0)
        a, b = x1.to(tl.float32), x2.to(tl.float32)
        if HAS_NORM:
            rstd = tl.rsqrt((tl.sum(a * a, 1) + tl.sum(b * b, 1)) / HEAD_DIM + eps)[:, None]
            w1 = tl.load(w_ptr + offs_r).to(tl.float32)[None, :]
            w2 = tl.load(w_ptr + HALF + offs_r).to(tl.float32)[None, :]
            a = ((a * rstd).to(x1.dtype).to(tl.float32) * w1).to(x1.dtype).to(tl.float32)
            b = ((b * rstd).to(x1.dtype).to(tl.float32) * w2).to(x1.dtype).to(tl.float32)
        r1 = (a * cos - b * sin).to(x1.dtype)
        r2 = (b * cos + a * sin).to(x1.dtype)
        tl.store(p1, r1, mask=mask)
        tl.store(p1 + HALF, r2, mask=mask)
        if WRITE:
            c1 = cache_ptr + offs_h[:, None] * stride_ch + offs_r[None, :]
            if FP8_MAX > 0:
                r1 = tl.clamp(r1.to(tl.float32), -FP8_MAX, FP8_MAX)
                r2 = tl.clamp(r2.to(tl.float32), -FP8_MAX, FP8_MAX)
            tl.store(c1, r1.to(cache_ptr.dtype.element_ty), mask=mask)
            tl.store(c1 + HALF, r2.to(cache_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _qk_rotary_kv_kernel(
    q_ptr, k_ptr, v_ptr, qw_ptr, kw_ptr, pos_ptr, cos_sin_ptr, k_cache_ptr, v_cache_ptr, slot_ptr,
    eps, num_q_heads, num_kv_heads,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_cs,
    stride_kcb, stride_kcs, stride_kch, stride_vcb, stride_vcs, stride_vch,
    HEAD_DIM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    HAS_NORM: tl.constexpr, WRITE_KV: tl.constexpr, FP8_MAX: tl.constexpr, USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    tok = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + tok).to(tl.int64)
    offs_r = tl.arange(0, HALF)
    cos = tl.load(cos_sin_ptr + pos * stride_cs + offs_r).to(tl.float32)[None, :]
    sin = tl.load(cos_sin_ptr + pos * stride_cs + HALF + offs_r).to(tl.float32)[None, :]
    _prepare_heads(q_ptr + tok * stride_qt, stride_qh, num_q_heads, qw_ptr, eps, cos, sin, q_ptr, 0,
                   HEAD_DIM, HALF, BLOCK_H, HAS_NORM, False, 0.0)
    write = False
    kc = k_cache_ptr
    vc = v_cache_ptr
    if WRITE_KV:
        slot = tl.load(slot_ptr + tok)
        write = slot >= 0  # padding tokens (CUDA-graph batch fill) own no slot
        slot = tl.maximum(slot, 0)
        kc = k_cache_ptr + (slot // BLOCK_SIZE) * stride_kcb + (slot % BLOCK_SIZE) * stride_kcs
        vc = v_cache_ptr + (slot // BLOCK_SIZE) * stride_vcb + (slot % BLOCK_SIZE) * stride_vcs
    if write:
        _prepare_heads(k_ptr + tok * stride_kt, stride_kh, num_kv_heads, kw_ptr, eps, cos, sin, kc, stride_kch,
                       HEAD_DIM, HALF, BLOCK_H, HAS_NORM, True, FP8_MAX)
        offs_h = tl.arange(0, BLOCK_H)
        offs_d = tl.arange(0, HEAD_DIM)
        for h0 in range(0, num_kv_heads, BLOCK_H):
            heads = h0 + offs_h
            mask = (heads < num_kv_heads)[:, None]
            v = tl.load(v_ptr + tok * stride_vt + heads[:, None] * stride_vh + offs_d[None, :], mask=mask)
            if FP8_MAX > 0:
                v = tl.clamp(v.to(tl.float32), -FP8_MAX, FP8_MAX)
            tl.store(vc + heads[:, None] * stride_vch + offs_d[None, :], v.to(v_cache_ptr.dtype.element_ty),
                     mask=mask)
    else:
        _prepare_heads(k_ptr + tok * stride_kt, stride_kh, num_kv_heads, kw_ptr, eps, cos, sin, kc, 0,
                       HEAD_DIM, HALF, BLOCK_H, HAS_NORM, False, 0.0)


def supports(head_dim: int, rotary_dim: int) -> bool:
    """The fused kernel rotates whole heads of a power-of-two size (Llama and Qwen's shapes);
    partial rotary or odd head sizes take the separate kernels."""
    return rotary_dim == head_dim and head_dim >= 16 and head_dim & (head_dim - 1) == 0


def qk_rotary_kv_write(q, k, v, q_weight, k_weight, eps: float, positions, cos_sin_cache,
                       k_cache=None, v_cache=None, slot_mapping=None):
    """In place: q [T, Hq, D] and k [T, Hk, D] (unit last stride, any other strides: views of
    the fused qkv output) become rotary(rms_norm(x) * weight) per head (no norm when the
    weights are None); with caches given, k (rotated) and v [T, Hk, D] are written to
    k_cache/v_cache [blocks, block_size, Hk, D] at slot_mapping (int64, -1 = none). Returns
    (q, k). No host sync."""
    require_triton()
    num_tokens, num_q_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    assert supports(head_dim, cos_sin_cache.shape[-1]), "use the separate norm/rotary kernels"
    assert q.stride(-1) == 1 and k.stride(-1) == 1 and v.stride(-1) == 1 and cos_sin_cache.stride(-1) == 1
    has_norm = q_weight is not None
    write_kv = k_cache is not None
    if num_tokens == 0:
        return q, k
    if write_kv:
        assert k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1
    block_h = min(triton.next_power_of_2(max(num_q_heads, num_kv_heads)), max(1, 2048 // head_dim))
    kc = k_cache if write_kv else q
    vc = v_cache if write_kv else q
    cache_strides = (*k_cache.stride()[:3], *v_cache.stride()[:3]) if write_kv else (0,) * 6
    _qk_rotary_kv_kernel[(num_tokens,)](
        q, k, v, q_weight if has_norm else q, k_weight if has_norm else k, positions, cos_sin_cache,
        kc, vc, slot_mapping if write_kv else positions,
        eps, num_q_heads, num_kv_heads,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), cos_sin_cache.stride(0),
        *cache_strides,
        HEAD_DIM=head_dim, HALF=head_dim // 2, BLOCK_H=block_h,
        BLOCK_SIZE=k_cache.shape[1] if write_kv else 1,
        HAS_NORM=has_norm, WRITE_KV=write_kv, FP8_MAX=_fp8_max(k_cache.dtype) if write_kv else 0.0,
        num_warps=4, **pdl_launch(q.device),
    )
    return q, k


def qk_rotary_kv_write_ref(q, k, v, q_weight, k_weight, eps: float, positions, cos_sin_cache,
                           k_cache=None, v_cache=None, slot_mapping=None):
    """The unfused path in plain torch, same in-place contract: the reference the kernel is
    tested against."""
    if q_weight is not None:
        q.copy_(rms_norm_ref(q, q_weight, eps))
        k.copy_(rms_norm_ref(k, k_weight, eps))
    apply_rotary_ref(q, k, positions, cos_sin_cache)
    if k_cache is not None:
        write_kv_cache_ref(k, v, k_cache, v_cache, slot_mapping)
    return q, k
