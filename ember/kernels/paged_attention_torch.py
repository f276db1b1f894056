"""Paged attention in plain torch without a Python loop per token or per decoding sequence: the
`torch` backend's path (the CPU's, where no Triton kernel runs). Same contract as
`paged_attention_ref`, which it is tested against.

Every sequence with a single new token (a decode) is attended in one batched pair of bmm's
(scores, weighted V) over its K/V gathered through the block table and masked by length;
each sequence with several new tokens (a prefill chunk) gets one call of its own, causal by
absolute position. Prefill chunks are few per step; decodes are the many."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ember.kernels.step_memo import StepMemo


def paged_attention_torch(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                          max_query_len: int, max_seq_len: int, out=None, num_splits=None):
    """num_splits is accepted for signature parity and ignored."""
    num_tokens, num_q_heads, head_dim = q.shape
    num_seqs = seq_lens.shape[0]
    if max_query_len == 1 and num_tokens == num_seqs:  # decodes only: no host reads at all
        decoded = _decode(q, k_cache, v_cache, block_tables, seq_lens, scale, max_seq_len)
        return decoded if out is None else out.copy_(decoded)
    if out is None:
        out = q.new_zeros(num_tokens, num_q_heads, head_dim)
    starts = query_start_loc.tolist()
    lens = seq_lens.tolist()
    q_lens = [starts[s + 1] - starts[s] for s in range(num_seqs)]
    decodes = [s for s in range(num_seqs) if q_lens[s] == 1]
    if decodes:
        rows = torch.tensor([starts[s] for s in decodes], device=q.device)
        index = torch.tensor(decodes, device=q.device)
        decoded = _decode(q[rows], k_cache, v_cache, block_tables[index], seq_lens[index], scale,
                          max(lens[s] for s in decodes))
        out.index_copy_(0, rows, decoded.to(out.dtype))
    for s in range(num_seqs):
        if q_lens[s] > 1:
            q0 = starts[s]
            out[q0:q0 + q_lens[s]] = _prefill(q[q0:q0 + q_lens[s]], k_cache, v_cache, block_tables[s], lens[s],
                                              scale)
    return out


def _gather(cache: torch.Tensor, block_tables: torch.Tensor, num_blocks: int, dtype: torch.dtype,
            keep: torch.Tensor | None = None) -> torch.Tensor:
    """[num_seqs, heads, num_blocks * block_size, head_dim]: each sequence's first blocks, in
    `dtype` (an fp8 cache is widened), slots outside `keep` [num_seqs, slots] zeroed."""
    blocks = cache[block_tables[:, :num_blocks].long()].to(dtype)  # a copy: [S, nb, bs, H, D]
    s, nb, bs, h, d = blocks.shape
    blocks = blocks.view(s, nb * bs, h, d)
    if keep is not None:
        # Unwritten slots hold whatever memory held, NaN included: masking their scores is not
        # enough, since 0 * NaN is NaN in the weighted sum of V.
        blocks.masked_fill_(~keep[:, :, None, None], 0)
    return blocks.transpose(1, 2)


def _decode(q, k_cache, v_cache, block_tables, seq_lens, scale, max_seq_len):
    """One query row per sequence: [S, Hq, D]. Two bmm's per step over the gathered slots as
    they lie in the cache ([S, slots, kv heads * D], no transposed copy): each query row is
    placed in its kv head's columns of a zero row of kv heads * D (block-diagonal), so one bmm
    scores every head; the weighted V keeps each head's own block. The zeros cost kv-heads-fold
    multiplies, which is nothing at these sizes next to the copies it saves. On the CPU, SDPA
    with enable_gqa and a mask took ~2.5 ms for 16 sequences of 160 tokens (9 q / 3 kv heads).
    What depends only on the step (which slots, which of them lie past a sequence's length) is
    derived once per step for all layers (_decode_plan)."""
    num_seqs, num_q_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    blocks, length_bias, unowned, diagonal = _decode_plan((block_tables, seq_lens), (
        max_seq_len, block_size, num_kv_heads, num_q_heads // num_kv_heads, q.dtype))
    k = _slot_rows(k_cache, blocks, q.dtype)
    v = _slot_rows(v_cache, blocks, q.dtype)
    # Unwritten slots hold whatever memory held, NaN included: neither a -inf score nor a zero
    # weight hides a NaN (NaN + -inf, 0 * NaN), so those rows of K and V are zeroed.
    if unowned is not None:
        k.index_fill_(0, unowned, 0)
        v.index_fill_(0, unowned, 0)
    k, v = k.view(num_seqs, -1, num_kv_heads * head_dim), v.view(num_seqs, -1, num_kv_heads * head_dim)
    spread = q.new_zeros(num_seqs, num_kv_heads * num_q_heads, head_dim).index_copy_(1, diagonal, q)
    # scale * q.k + (0 or -inf by length), in one op; softmax accumulates in float32.
    scores = torch.baddbmm(length_bias, spread.view(num_seqs, num_q_heads, -1), k.transpose(1, 2), alpha=scale)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.bmm(weights, v).view(num_seqs, num_q_heads * num_kv_heads, head_dim)
    return out.index_select(1, diagonal)


def _build_decode_plan(block_tables, seq_lens, max_seq_len, block_size, num_kv_heads, group, dtype):
    """(blocks: int64 [S * slots / block_size], length_bias: [S, Hq, slots] 0 or -inf,
    unowned: int64 flat slot rows past their sequence's length or None, diagonal: int64 [Hq]
    the row of each q head (kv head h, member g) in the block-diagonal [kv heads * Hq] layout)."""
    slots = -(-max_seq_len // block_size) * block_size
    blocks = block_tables[:, :slots // block_size].reshape(-1).long()  # int32 indexes 3x slower
    outside = torch.arange(slots, device=seq_lens.device) >= seq_lens[:, None]  # [S, slots]
    num_q_heads = num_kv_heads * group
    length_bias = torch.zeros(outside.shape, dtype=dtype, device=outside.device).masked_fill_(outside, float("-inf"))
    unowned = outside.view(-1).nonzero().squeeze(1)
    heads = torch.arange(num_q_heads, device=seq_lens.device)
    diagonal = heads * num_kv_heads + heads // group  # [h, g, h] of [kv heads, group, kv heads]
    return (blocks, length_bias[:, None, :].expand(-1, num_q_heads, -1), unowned if unowned.numel() else None,
            diagonal)


_decode_plan = StepMemo(_build_decode_plan)


def _slot_rows(cache, blocks, dtype) -> torch.Tensor:
    """[len(blocks) * block_size, kv heads * D]: the blocks' slots, a copy in `dtype`."""
    return cache.index_select(0, blocks).to(dtype).flatten(2).flatten(0, 1)


def _prefill(q, k_cache, v_cache, block_table, seq_len: int, scale):
    """One sequence's chunk of q_len new tokens, the last of its seq_len: [q_len, Hq, D]."""
    q_len = q.shape[0]
    block_size = k_cache.shape[1]
    num_blocks = -(-seq_len // block_size)
    k = _gather(k_cache, block_table[None], num_blocks, q.dtype)[:, :, :seq_len]
    v = _gather(v_cache, block_table[None], num_blocks, q.dtype)[:, :, :seq_len]
    q_pos = torch.arange(seq_len - q_len, seq_len, device=q.device)
    causal = torch.arange(seq_len, device=q.device)[None, :] <= q_pos[:, None]
    out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k, v, attn_mask=causal,
                                         scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    return out[0].transpose(0, 1)
