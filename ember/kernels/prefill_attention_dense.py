"""Attention of a lone long sequence (one prompt, or one chunk of it over its cached context)
through cuDNN's fused attention (`aten._scaled_dot_product_cudnn_attention`), which ran at
570-600 TFLOP/s on the H200 where Ember's Triton prefill kernel ran 340-440 and torch's
FlashAttention-2 about 350 (benchmarks/prefill_attention_gpu.py, docs/benchmarks.md).

Its K/V are gathered out of the paged cache into contiguous tensors once per layer call (50 us
at 32k tokens). cuDNN's causal mask is aligned top-left, so a chunk over cached context is two
calls merged by their log-sum-exps: the context without a mask (the GQA group's q heads folded
into extra query rows) and the rest causal, as a square, its K/V with their own heads where
cuDNN takes GQA (else copied out to every q head). cuDNN builds an
execution plan per shape; to bound how many a server meets, both calls see lengths in multiples
of BUCKET: the context part takes the context rounded down, and the square takes the remainder
of the context as padding query rows at its front (row r + i, query i, then sees those keys and
its own earlier ones: exactly causal) and zero rows at its end, all dropped afterwards.

cudnn_prefill_attend decides once per device and attention shape which way of calling cuDNN runs
there and agrees with the reference; where none does, the Triton prefill kernel serves.
"""

from __future__ import annotations

import functools
import logging

import torch

from ember.kernels._triton import tl, triton
from ember.kernels.torch_refusal import TORCH_REFUSAL, first_line

logger = logging.getLogger(__name__)

BUCKET = 256  # query rows and context keys cuDNN sees come in multiples of this


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, seq_len: int) -> torch.Tensor:
    """[seq_len, kv heads, D]: one sequence's keys (or values) in position order, contiguous."""
    block_size = cache.shape[1]
    blocks = block_table[:-(-seq_len // block_size)]
    return cache.index_select(0, blocks).flatten(0, 1)[:seq_len]


def _cudnn_attend(q, k, v, causal: bool, scale: float, lse: bool = True):
    """q [1, Hq, Sq, D], k and v [1, Hkv, Sk, D] (Hkv dividing Hq: cuDNN's own GQA) -> (out [1, Hq,
    Sq, D], log-sum-exp [1, Hq, Sq] or [1, Hq, Sq, 1] if lse)."""
    return torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, lse, 0.0, causal, False,
                                                              scale=scale)[:2]


def _cudnn_attend_repeated(q, k, v, causal: bool, scale: float, lse: bool = True):
    """_cudnn_attend for a cuDNN or torch that takes no GQA: K/V copied out to every q head."""
    group = q.shape[1] // k.shape[1]
    return _cudnn_attend(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), causal, scale, lse)


ATTENDS = (_cudnn_attend, _cudnn_attend_repeated)  # the probe's order: the first that serves


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


def split_at_context(q, k, v, q_len: int, seq_len: int, scale: float, attend, bucket: int = BUCKET):
    """Causal attention [q_len, Hq, D] of q [q_len, Hq, D] (the last q_len of seq_len positions)
    over k, v [seq_len, Hkv, D], from at most two calls of attend (see _cudnn_attend: it takes K/V
    with their own heads) at lengths in multiples of bucket, merged by log-sum-exp (see the
    module's docstring)."""
    num_q_heads, num_kv_heads, head_dim = q.shape[1], k.shape[1], q.shape[2]
    group, ctx = num_q_heads // num_kv_heads, seq_len - q_len
    ctx_part = ctx // bucket * bucket  # keys [0, ctx_part): no mask
    front = ctx - ctx_part  # context keys that join the causal square, as its first rows
    size = -(-(front + q_len) // bucket) * bucket
    if size == q_len:  # aligned (whole chunks, bucket-sized prompts): no padding to copy
        q_sq, k_sq, v_sq = q, k[ctx_part:], v[ctx_part:]
    else:
        q_sq = q.new_zeros(size, num_q_heads, head_dim)
        q_sq[front:front + q_len] = q
        k_sq, v_sq = (t.new_zeros(size, num_kv_heads, head_dim) for t in (k, v))
        k_sq[:front + q_len], v_sq[:front + q_len] = k[ctx_part:], v[ctx_part:]
    own, own_lse = attend(q_sq.transpose(0, 1)[None], k_sq.transpose(0, 1)[None], v_sq.transpose(0, 1)[None], True,
                          scale, ctx_part > 0)
    own = own[0, :, front:front + q_len]
    if ctx_part == 0:
        return own.transpose(0, 1).contiguous()
    own_lse = own_lse.reshape(num_q_heads, size)[:, front:front + q_len]
    # [kv heads, group * size, D]: q head h = kv * group + g attends its kv head's keys only.
    q_fold = q_sq.view(size, num_kv_heads, group, head_dim).permute(1, 2, 0, 3).reshape(1, num_kv_heads, -1, head_dim)
    past, past_lse = attend(q_fold, k[:ctx_part].transpose(0, 1)[None], v[:ctx_part].transpose(0, 1)[None], False,
                            scale)
    past = past.reshape(num_q_heads, size, head_dim)[:, front:front + q_len]
    past_lse = past_lse.reshape(num_q_heads, size)[:, front:front + q_len]
    return merge(past, past_lse, own, own_lse)


def lone_sequence_attention(q, k_cache, v_cache, block_tables, scale: float, q_len: int, seq_len: int, out,
                            attend):
    """[num_tokens, Hq, D]: causal attention of the batch's only sequence, q_len new tokens
    (q's first rows) of seq_len, both exact, its K/V (the new ones included) already in the
    cache, through cuDNN (attend: one of ATTENDS, the one cudnn_prefill_attend picked). Written
    into out when given, else a new tensor."""
    k = gather_kv(k_cache, block_tables[0], seq_len).to(q.dtype)
    v = gather_kv(v_cache, block_tables[0], seq_len).to(q.dtype)
    result = split_at_context(q[:q_len], k, v, q_len, seq_len, scale, attend)
    if out is None and q.shape[0] == q_len:
        return result
    if out is None:
        out = torch.empty_like(q)
    out[:q_len] = result
    return out


@functools.lru_cache(maxsize=None)
def cudnn_prefill_attend(device: torch.device, num_q_heads: int, num_kv_heads: int, head_dim: int,
                         dtype: torch.dtype):
    """The first of ATTENDS with which lone_sequence_attention runs on this device at this shape
    and agrees with paged_attention_ref on a small chunk over cached context (probed once), or
    None: cuDNN does not serve here."""
    from ember.kernels.paged_attention_ref import paged_attention_ref

    if device.type != "cuda" or not hasattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention"):
        return None
    gen = torch.Generator(device=device).manual_seed(0)
    q_len, seq_len, block_size = 300, 700, 16
    q = torch.randn(q_len, num_q_heads, head_dim, device=device, dtype=dtype, generator=gen)
    k_cache, v_cache = (torch.randn(seq_len // block_size + 1, block_size, num_kv_heads, head_dim, device=device,
                                    dtype=dtype, generator=gen) for _ in range(2))
    block_tables = torch.arange(seq_len // block_size + 1, device=device, dtype=torch.int32).flip(0)[None]
    qsl = torch.tensor([0, q_len], device=device, dtype=torch.int32)
    seq_lens = torch.tensor([seq_len], device=device, dtype=torch.int32)
    scale = head_dim ** -0.5
    ref = paged_attention_ref(q.float(), k_cache.float(), v_cache.float(), block_tables, qsl, seq_lens, scale,
                              q_len, seq_len)
    for attend in ATTENDS:
        try:
            out = lone_sequence_attention(q, k_cache, v_cache, block_tables, scale, q_len, seq_len, None, attend)
        except TORCH_REFUSAL as e:
            logger.info("cuDNN attention through %s does not run here (%s)", attend.__name__, first_line(e))
            continue
        if torch.allclose(out.float(), ref, atol=3e-2, rtol=3e-2):
            return attend
        logger.warning("cuDNN attention through %s disagrees with the reference here", attend.__name__)
    logger.info("cuDNN attention does not serve here: long prompts take the Triton prefill kernel")
    return None
