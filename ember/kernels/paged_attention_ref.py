"""Plain-torch paged attention: the correctness reference and the CPU path.

Same contract as ``paged_attention``: loops over sequences, gathers K/V through
the block table, applies the causal mask by absolute position, softmax in fp32.
"""

from __future__ import annotations

import torch


def paged_attention_ref(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                        max_query_len: int, max_seq_len: int, out=None, num_splits=None):
    """max_query_len, max_seq_len and num_splits are accepted for signature parity
    and ignored. Rows of padding tokens are zero when out is allocated here."""
    num_tokens, num_q_heads, head_dim = q.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    qpk = num_q_heads // num_kv_heads
    if out is None:
        out = torch.zeros_like(q)
    starts = query_start_loc.tolist()  # host sync: fine for a reference
    lens = seq_lens.tolist()
    for s, seq_len in enumerate(lens):
        q0, q1 = starts[s], starts[s + 1]
        q_len = q1 - q0
        if q_len == 0:
            continue
        n_blocks = -(-seq_len // block_size)
        blocks = block_tables[s, :n_blocks].long()
        # Gather whole blocks then drop the tail: unwritten slots never enter the math.
        k = k_cache[blocks].reshape(-1, num_kv_heads, head_dim)[:seq_len].float()
        v = v_cache[blocks].reshape(-1, num_kv_heads, head_dim)[:seq_len].float()
        qs = q[q0:q1].float().view(q_len, num_kv_heads, qpk, head_dim)
        # GQA without materialising repeated K/V: group q heads per kv head.
        scores = torch.einsum("qhgd,khd->hgqk", qs, k) * scale
        q_pos = torch.arange(seq_len - q_len, seq_len, device=q.device)
        k_pos = torch.arange(seq_len, device=q.device)
        scores.masked_fill_(k_pos[None, :] > q_pos[:, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        o = torch.einsum("hgqk,khd->qhgd", probs, v).reshape(q_len, num_q_heads, head_dim)
        out[q0:q1] = o.to(out.dtype)
    return out
