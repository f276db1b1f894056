"""NeoX-style rotary embedding (rotate_half, as HF Llama/Qwen2/Qwen3), applied
IN PLACE to q and k. cos_sin_cache [max_pos, rot_dim] fp32 holds cos in the
first rot_dim/2 columns and sin in the last; rot_dim < head_dim rotates only
the leading rot_dim dims (partial rotary). Math in fp32, one rounding."""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.step_memo import StepMemo

__all__ = ["apply_rotary", "apply_rotary_ref"]


@triton.jit
def _rotate_heads(x_ptr, stride_h, num_heads, cos, sin, offs_r, r_mask,
                  HALF: tl.constexpr, BLOCK_H: tl.constexpr):
    for h0 in range(0, num_heads, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        mask = (offs_h < num_heads)[:, None] & r_mask[None, :]
        p1 = x_ptr + offs_h[:, None] * stride_h + offs_r[None, :]
        x1 = tl.load(p1, mask=mask, other=0.0)
        x2 = tl.load(p1 + HALF, mask=mask, other=0.0)
        a, b = x1.to(tl.float32), x2.to(tl.float32)
        tl.store(p1, (a * cos - b * sin).to(x1.dtype), mask=mask)
        tl.store(p1 + HALF, (b * cos + a * sin).to(x1.dtype), mask=mask)


@triton.jit
def _rotary_kernel(q_ptr, k_ptr, pos_ptr, cache_ptr, num_q_heads, num_k_heads,
                   stride_qt, stride_qh, stride_kt, stride_kh, stride_c,
                   HALF: tl.constexpr, HALF_PAD: tl.constexpr, BLOCK_H: tl.constexpr):
    tok = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + tok).to(tl.int64)
    offs_r = tl.arange(0, HALF_PAD)
    r_mask = offs_r < HALF
    cos = tl.load(cache_ptr + pos * stride_c + offs_r, mask=r_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(cache_ptr + pos * stride_c + HALF + offs_r, mask=r_mask, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(q_ptr + tok * stride_qt, stride_qh, num_q_heads, cos, sin, offs_r, r_mask, HALF, BLOCK_H)
    _rotate_heads(k_ptr + tok * stride_kt, stride_kh, num_k_heads, cos, sin, offs_r, r_mask, HALF, BLOCK_H)


def apply_rotary(q, k, positions, cos_sin_cache):
    """q [T, Hq, D], k [T, Hk, D] (token/head strides free, unit last stride;
    views into a fused qkv buffer are fine) are rotated in place and returned."""
    require_triton()
    num_tokens, num_q_heads, _ = q.shape
    assert q.stride(-1) == 1 and k.stride(-1) == 1 and cos_sin_cache.stride(-1) == 1
    half = cos_sin_cache.shape[-1] // 2
    half_pad = triton.next_power_of_2(half)
    block_h = min(triton.next_power_of_2(max(num_q_heads, k.shape[1])), max(1, 2048 // half_pad))
    if num_tokens > 0:
        _rotary_kernel[(num_tokens,)](
            q, k, positions, cos_sin_cache, num_q_heads, k.shape[1],
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), cos_sin_cache.stride(0),
            HALF=half, HALF_PAD=half_pad, BLOCK_H=block_h, num_warps=4,
        )
    return q, k


def apply_rotary_ref(q, k, positions, cos_sin_cache):
    """Torch reference with the same in-place contract; also the CPU's rotary, hence few ops: the
    step's cos/sin rows once for all layers (StepMemo), q and k rotated as one view where they lie
    side by side (the fused qkv projection's output), rotate_half as a roll with the sign in sin."""
    half = cos_sin_cache.shape[-1] // 2
    cos, signed_sin = _rotary_rows((positions, cos_sin_cache))
    for x in _side_by_side(q, k):
        part = x.narrow(-1, 0, 2 * half)
        xf = part.float()
        part.copy_(xf * cos + xf.roll(half, -1) * signed_sin)  # no FMA: HF's roundings
    return q, k


def _build_rotary_rows(positions, cos_sin_cache):
    """(cos, sin with the first half negated), each [T, 1, rot_dim] fp32: x * cos + roll(x) *
    sin is (x1 cos - x2 sin, x2 cos + x1 sin), rotate_half's rotation."""
    cos, sin = cos_sin_cache.index_select(0, positions).float().unsqueeze(1).chunk(2, dim=-1)
    return torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)


_rotary_rows = StepMemo(_build_rotary_rows)


def _side_by_side(q, k) -> tuple:
    """(one [T, Hq + Hk, D] view of both) when k's heads follow q's in memory with the same
    strides, else (q, k)."""
    if (q.shape[0] == k.shape[0] and q.stride() == k.stride() and q.dtype == k.dtype and q.shape[2] == k.shape[2]
            and q.stride(1) == q.shape[2] and k.data_ptr() == q.data_ptr() + q.shape[1] * q.stride(1) * q.element_size()):
        return (q.as_strided((q.shape[0], q.shape[1] + k.shape[1], q.shape[2]), q.stride()),)
    return q, k
