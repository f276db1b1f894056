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


def paged_attention_torch(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                          max_query_len: int, max_seq_len: int, out=None, num_splits=None):
    """num_splits is accepted for signature parity and ignored."""
    num_tokens, num_q_heads, head_dim = q.shape
    if out is None:
        out = q.new_zeros(num_tokens, num_q_heads, head_dim)
    num_seqs = seq_lens.shape[0]
    if max_query_len == 1 and num_tokens == num_seqs:  # decodes only: no host reads at all
        out.copy_(_decode(q, k_cache, v_cache, block_tables, seq_lens, scale, max_seq_len))
        return out
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
    with enable_gqa and a mask took ~2.5 ms for 16 sequences of 160 tokens (9 q / 3 kv heads)."""
    num_seqs, num_q_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = num_q_heads // num_kv_heads
    slots = -(-max_seq_len // block_size) * block_size
    blocks = block_tables[:, :slots // block_size].reshape(-1).long()  # int32 indexes 3x slower
    # Slots past a sequence's length (a partial last block, a shorter sequence) never count.
    outside = torch.arange(slots, device=q.device) >= seq_lens[:, None]  # [S, slots]
    k = _slot_rows(k_cache, blocks, q.dtype)
    v = _slot_rows(v_cache, blocks, q.dtype)
    # Unwritten slots hold whatever memory held, NaN included: a zero weight is not enough,
    # since 0 * NaN is NaN in the weighted sum of V (masking the scores covers K).
    v.index_fill_(0, outside.view(-1).nonzero().squeeze(1), 0)
    k, v = k.view(num_seqs, slots, -1), v.view(num_seqs, slots, -1)
    spread = q.new_zeros(num_seqs, num_kv_heads, group, num_kv_heads, head_dim)
    heads = torch.arange(num_kv_heads, device=q.device)
    spread[:, heads, :, heads] = q.view(num_seqs, num_kv_heads, group, head_dim).transpose(0, 1)
    scores = torch.bmm(spread.view(num_seqs, num_q_heads, -1), k.transpose(1, 2))  # [S, Hq, slots]
    scores = scores.float().masked_fill_(outside[:, None, :], float("-inf"))
    weights = torch.softmax(scores * scale, dim=-1).to(q.dtype)
    out = torch.bmm(weights, v).view(num_seqs, num_kv_heads, group, num_kv_heads, head_dim)
    return out[:, heads, :, heads].transpose(0, 1).reshape(num_seqs, num_q_heads, head_dim)


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
