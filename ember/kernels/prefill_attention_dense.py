"""Attention of a lone long sequence (one prompt, or one chunk of it over its cached context)
through a dense attention kernel of torch's: its K/V are gathered out of the paged cache into
contiguous tensors once per layer call (a copy of a few tens of microseconds at 32k tokens),
then attended by

  "flash": FlashAttention-2 as torch ships it (`aten._flash_attention_forward`, varlen form),
           GQA native, causal aligned bottom-right (query i of a chunk sees keys <= ctx + i);
  "cudnn": cuDNN's fused attention (`aten._scaled_dot_product_cudnn_attention`): a chunk over
           cached context is two calls merged by their log-sum-exps, the context part without a
           mask (the GQA group's q heads folded into extra query rows, K/V kept at their heads)
           and the chunk's own keys causal (a square: no alignment question), K/V heads expanded.

Which kernel, if any, serves is decided once per device and attention shape (`lone_prefill_op`):
the first of PREFERENCE that runs there and agrees with the reference.
"""

from __future__ import annotations

import functools

import torch

from ember.kernels._triton import tl, triton


# Fastest first, as measured on the H200 by benchmarks/prefill_attention_gpu.py (docs/benchmarks.md).
PREFERENCE = ("cudnn", "flash")


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, seq_len: int) -> torch.Tensor:
    """[seq_len, kv heads, D]: one sequence's keys (or values) in position order, contiguous."""
    block_size = cache.shape[1]
    blocks = block_table[:-(-seq_len // block_size)]
    return cache.index_select(0, blocks).flatten(0, 1)[:seq_len]


def _flash(q, k, v, query_start_loc, key_start_loc, q_len, seq_len, scale):
    return torch.ops.aten._flash_attention_forward(q, k, v, query_start_loc, key_start_loc, q_len, seq_len,
                                                   0.0, True, False, scale=scale)[0]


def _cudnn_attend(q, k, v, causal: bool, scale: float):
    """[1, H, Sq, D] each -> (out [1, H, Sq, D], log-sum-exp [1, H, Sq] or [1, H, Sq, 1])."""
    return torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, causal, False,
                                                              scale=scale)[:2]


@triton.jit
def _merge_kernel(past_ptr, own_ptr, past_lse_ptr, own_lse_ptr, out_ptr, q_len,
                  stride_ph, stride_pt, stride_oh, stride_ot, stride_outt, stride_outh,
                  HEAD_DIM: tl.constexpr, BLOCK_T: tl.constexpr):
    """out[t, h] = past + (own - past) * sigmoid(own_lse - past_lse): the softmax merge of two
    attentions over disjoint keys, in one pass, written straight into [tokens, heads, D]."""
    h = tl.program_id(1)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, HEAD_DIM)
    mask = t < q_len
    lse_p = tl.load(past_lse_ptr + h * q_len + t, mask=mask, other=0.0)
    lse_o = tl.load(own_lse_ptr + h * q_len + t, mask=mask, other=0.0)
    w = 1.0 / (1.0 + tl.exp(lse_p - lse_o))
    t64 = t.to(tl.int64)
    p = tl.load(past_ptr + h * stride_ph + t64[:, None] * stride_pt + d[None, :], mask=mask[:, None]).to(tl.float32)
    o = tl.load(own_ptr + h * stride_oh + t64[:, None] * stride_ot + d[None, :], mask=mask[:, None]).to(tl.float32)
    tl.store(out_ptr + t64[:, None] * stride_outt + h * stride_outh + d[None, :],
             (p + (o - p) * w[:, None]).to(out_ptr.dtype.element_ty), mask=mask[:, None])


def merge(past, past_lse, own, own_lse):
    """[q_len, H, D] from two attentions [H, q_len, D] (any strides, last dim contiguous) over
    disjoint keys and their natural-log log-sum-exps [H, q_len]."""
    num_heads, q_len, head_dim = past.shape
    out = torch.empty(q_len, num_heads, head_dim, dtype=past.dtype, device=past.device)
    past_lse, own_lse = (x.reshape(num_heads, q_len).float().contiguous() for x in (past_lse, own_lse))
    block_t = 64
    _merge_kernel[(triton.cdiv(q_len, block_t), num_heads)](
        past, own, past_lse, own_lse, out, q_len, past.stride(0), past.stride(1), own.stride(0), own.stride(1),
        out.stride(0), out.stride(1), HEAD_DIM=head_dim, BLOCK_T=block_t, num_warps=4)
    return out


def split_at_context(q, k, v, q_len: int, seq_len: int, scale: float, attend):
    """Causal attention of q [q_len, Hq, D] (the last q_len of seq_len positions) over k, v
    [seq_len, Hkv, D] from two calls of attend (see _cudnn_attend): the cached context without a
    mask, GQA folded into query rows, and the chunk's own keys causal, merged by log-sum-exp."""
    num_q_heads, num_kv_heads, head_dim = q.shape[1], k.shape[1], q.shape[2]
    group, ctx = num_q_heads // num_kv_heads, seq_len - q_len
    own_k, own_v = (t[ctx:].repeat_interleave(group, dim=1).transpose(0, 1)[None] for t in (k, v))
    own, own_lse = attend(q.transpose(0, 1)[None], own_k, own_v, True, scale)
    if ctx == 0:
        return own[0].transpose(0, 1).contiguous()
    # [kv heads, group * q_len, D]: q head h = kv * group + g attends its kv head's keys only.
    q_fold = q.view(q_len, num_kv_heads, group, head_dim).permute(1, 2, 0, 3).reshape(1, num_kv_heads, -1, head_dim)
    past, past_lse = attend(q_fold, k[:ctx].transpose(0, 1)[None], v[:ctx].transpose(0, 1)[None], False, scale)
    return merge(past.reshape(num_q_heads, q_len, head_dim), past_lse, own[0], own_lse)


def _cudnn(q, k, v, query_start_loc, key_start_loc, q_len, seq_len, scale):
    return split_at_context(q, k, v, q_len, seq_len, scale, _cudnn_attend)


OPS = {"flash": _flash, "cudnn": _cudnn}


def lone_sequence_attention(op: str, q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                            q_len: int, seq_len: int, out):
    """out [q_len, Hq, D] = causal attention of the batch's only sequence, q_len new tokens of
    seq_len (both exact), its K/V (the new ones included) already in the cache. out None: a new
    tensor (the kernel's own output where it can be)."""
    k = gather_kv(k_cache, block_tables[0], seq_len).to(q.dtype)
    v = gather_kv(v_cache, block_tables[0], seq_len).to(q.dtype)
    key_start_loc = torch.nn.functional.pad(seq_lens[:1], (1, 0))  # [0, seq_len], on the device
    result = OPS[op](q[:q_len], k, v, query_start_loc[:2], key_start_loc, q_len, seq_len, scale)
    if out is None and q.shape[0] == q_len:
        return result
    if out is None:
        out = torch.empty_like(q)
    out[:q_len] = result
    return out


@functools.lru_cache(maxsize=None)
def lone_prefill_op(device: torch.device, num_q_heads: int, num_kv_heads: int, head_dim: int,
                    dtype: torch.dtype) -> str | None:
    """The first op of PREFERENCE that runs on this device at this shape and agrees with
    paged_attention_ref on a small chunk over cached context; None: none does (Triton serves)."""
    from ember.kernels.paged_attention_ref import paged_attention_ref

    if device.type != "cuda":
        return None
    gen = torch.Generator(device=device).manual_seed(0)
    q_len, seq_len, block_size = 80, 208, 16
    q = torch.randn(q_len, num_q_heads, head_dim, device=device, dtype=dtype, generator=gen)
    k_cache, v_cache = (torch.randn(seq_len // block_size, block_size, num_kv_heads, head_dim, device=device,
                                    dtype=dtype, generator=gen) for _ in range(2))
    block_tables = torch.arange(seq_len // block_size, device=device, dtype=torch.int32).flip(0)[None]
    qsl = torch.tensor([0, q_len], device=device, dtype=torch.int32)
    seq_lens = torch.tensor([seq_len], device=device, dtype=torch.int32)
    scale = head_dim ** -0.5
    ref = paged_attention_ref(q.float(), k_cache.float(), v_cache.float(), block_tables, qsl, seq_lens, scale,
                              q_len, seq_len)
    for op in PREFERENCE:
        try:
            out = lone_sequence_attention(op, q, k_cache, v_cache, block_tables, qsl, seq_lens, scale, q_len,
                                          seq_len, None)
        except (RuntimeError, NotImplementedError, ValueError, TypeError):  # not on this device/build
            continue
        if torch.allclose(out.float(), ref, atol=3e-2, rtol=3e-2):
            return op
    return None
