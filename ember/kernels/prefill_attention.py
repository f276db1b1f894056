"""Causal prefill attention over the paged KV cache with large tiles, for long query runs (fresh
prompts, chunks of chunked prefill over their cached context).

The unified kernel in paged_attention.py packs a few tokens x the q heads of one kv head into
each program: right for decode and short prefills, but its small tiles leave Hopper's tensor
cores idle on a long prompt. Here each program owns BLOCK_M consecutive query tokens of one q
head and walks the keys BLOCK_N at a time, FlashAttention-2 style: online softmax in fp32 in the
exp2 domain, full tiles (below the causal diagonal, the bulk) without any mask, the diagonal
tiles masked. Programs of the q heads sharing a kv head run side by side (head is the fastest
grid axis), so each K/V tile is read from memory once and from L2 by the others. The q blocks
are issued last-first: under causality the last blocks have the most keys, and starting them
first keeps the tail of the launch short.

Only sequences with at least `min_q_len` new tokens are attended here; paged_attention's kernel
leaves exactly those out (its `long_q_len`), so one batch can mix both. A lone long sequence goes
to cuDNN instead where it serves (prefill_attention_dense). On the H200 (7B shape, bf16) this
kernel ran 437 TFLOP/s on a 32k prompt and 417 on an 8k chunk over 24k of context, against 278
and 258 for the unified kernel; reading the K/V through the block table costs it about a quarter
(a contiguous-K/V variant ran 468 at 128x64 tiles, where the paged one ran 341).
"""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton

__all__ = ["prefill_attention", "prefill_config"]

_LOG2E = 1.4426950408889634


@triton.jit
def find_seq(qsl_ptr, q_block, num_seqs, BLOCK_M: tl.constexpr):
    """The sequence owning q-block slot q_block when sequence s owns the slots
    [qsl[s]//BLOCK_M + s, qsl[s+1]//BLOCK_M + s+1) (a strictly increasing start: binary-search
    the last start <= q_block). Shared with paged_attention's kernel."""
    lo = q_block * 0  # tensors from the start (num_seqs may arrive specialised as 1)
    hi = lo + num_seqs
    while lo < hi:
        mid = (lo + hi) // 2
        start = tl.load(qsl_ptr + mid) // BLOCK_M + mid
        if start <= q_block:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@triton.jit
def _key_tile(q, m_i, l_i, acc, kpos, q_pos, kv_end, bt_row, k_base, v_base, offs_d,
              scale_log2, stride_kb, stride_ks, stride_vb, stride_vs,
              BLOCK_SIZE: tl.constexpr, MASKED: tl.constexpr, DOT_PREC: tl.constexpr):
    """One online-softmax step over the keys at positions kpos (all < kv_end unless MASKED)."""
    if MASKED:
        kmask = kpos < kv_end  # never read a slot past the sequence (nor its block-table entry)
        blk = tl.load(bt_row + kpos // BLOCK_SIZE, mask=kmask, other=0).to(tl.int64)
    else:
        blk = tl.load(bt_row + kpos // BLOCK_SIZE).to(tl.int64)
    slot_k = blk * stride_kb + (kpos % BLOCK_SIZE) * stride_ks
    slot_v = blk * stride_vb + (kpos % BLOCK_SIZE) * stride_vs
    if MASKED:
        k = tl.load(k_base + slot_k[:, None] + offs_d[None, :], mask=kmask[:, None], other=0.0)
        v = tl.load(v_base + slot_v[:, None] + offs_d[None, :], mask=kmask[:, None], other=0.0)
    else:
        k = tl.load(k_base + slot_k[:, None] + offs_d[None, :])
        v = tl.load(v_base + slot_v[:, None] + offs_d[None, :])
    # .to: an fp8 cache is widened to the query dtype (a no-op otherwise).
    s = tl.dot(q, tl.trans(k.to(q.dtype)), input_precision=DOT_PREC)
    if MASKED:
        s = tl.where(kmask[None, :] & (kpos[None, :] <= q_pos[:, None]), s, float("-inf"))
    # Every row sees key 0 in the first tile it reads, so m_new is finite: no -inf - -inf. The
    # scale is applied in the max and in one fused multiply-add with the subtraction.
    m_new = tl.maximum(m_i, tl.max(s, 1) * scale_log2)
    p = tl.exp2(s * scale_log2 - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(q.dtype), v.to(q.dtype), acc * alpha[:, None], input_precision=DOT_PREC)
    return m_new, l_i, acc


@triton.jit(do_not_specialize=["num_seqs", "stride_bt", "min_q_len"])
def _prefill_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, bt_ptr, qsl_ptr, seq_lens_ptr,
    scale_log2, num_seqs, min_q_len,
    stride_qt, stride_qh, stride_ot, stride_oh,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, stride_bt,
    QPK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PREC: tl.constexpr,
):
    head = tl.program_id(0)
    q_block = tl.num_programs(1) - 1 - tl.program_id(1)  # last (longest) blocks first
    seq = find_seq(qsl_ptr, q_block, num_seqs, BLOCK_M)
    q_start = tl.load(qsl_ptr + seq)
    q_len = tl.load(qsl_ptr + seq + 1) - q_start
    local_qb = q_block - (q_start // BLOCK_M + seq)
    if (local_qb * BLOCK_M >= q_len) | (q_len < min_q_len):
        return
    ctx_len = tl.load(seq_lens_ptr + seq) - q_len  # keys cached before this run of queries

    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q_local = local_qb * BLOCK_M + offs_m
    row_mask = q_local < q_len
    q_pos = ctx_len + q_local  # absolute position: attends to keys 0..q_pos
    tok = (q_start + q_local).to(tl.int64)
    q = tl.load(q_ptr + tok[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                mask=row_mask[:, None], other=0.0)

    kv_head = head // QPK
    bt_row = bt_ptr + seq.to(tl.int64) * stride_bt
    k_base = k_ptr + kv_head * stride_kh
    v_base = v_ptr + kv_head * stride_vh
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    # Keys up to the block's last real query; tiles wholly at or below its first query's
    # position need no mask.
    kv_end = ctx_len + tl.minimum((local_qb + 1) * BLOCK_M, q_len)
    full_tiles = (ctx_len + local_qb * BLOCK_M + 1) // BLOCK_N
    for t in range(0, full_tiles):
        m_i, l_i, acc = _key_tile(
            q, m_i, l_i, acc, t * BLOCK_N + offs_n, q_pos, kv_end, bt_row, k_base, v_base, offs_d,
            scale_log2, stride_kb, stride_ks, stride_vb, stride_vs, BLOCK_SIZE, False, DOT_PREC)
    for t in range(full_tiles, tl.cdiv(kv_end, BLOCK_N)):
        m_i, l_i, acc = _key_tile(
            q, m_i, l_i, acc, t * BLOCK_N + offs_n, q_pos, kv_end, bt_row, k_base, v_base, offs_d,
            scale_log2, stride_kb, stride_ks, stride_vb, stride_vs, BLOCK_SIZE, True, DOT_PREC)

    o = acc / l_i[:, None]
    tl.store(out_ptr + tok[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
             o.to(out_ptr.dtype.element_ty), mask=row_mask[:, None])


def prefill_config(head_dim: int, max_query_len: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages). H200 sweep, d=128, 28/4 heads, bf16 (docs/benchmarks.md):
    256x64 tiles, 8 warps, 3 stages ran 437 TFLOP/s on a 32k prompt and 417 on an 8k chunk over
    24k of context (128x64: 338 and 326; 128x128: 394 and 380); under 4k queries 128x128."""
    if head_dim > 128:
        return 64, 32, 4, 2
    if max_query_len >= 4096:
        return 256, 64, 8, 3
    return 128, 128, 8, 3


def prefill_attention(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                      max_query_len: int, min_q_len: int, out, config: tuple[int, int, int, int] | None = None):
    """Causal attention of the sequences with at least min_q_len new tokens (rows of q
    [num_tokens, Hq, D]) over the paged cache, written into their rows of out; other rows are
    left untouched. config overrides prefill_config (benchmarks sweep it)."""
    require_triton()
    num_tokens, num_q_heads, head_dim = q.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    assert head_dim == triton.next_power_of_2(head_dim) and head_dim >= 16
    assert q.stride(-1) == 1 and out.stride(-1) == 1 and k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1
    block_m, block_n, warps, stages = config or prefill_config(head_dim, max_query_len)
    assert block_n % block_size == 0 or block_size % block_n == 0
    num_seqs = seq_lens.shape[0]
    q_blocks = num_tokens // block_m + num_seqs
    _prefill_kernel[(num_q_heads, q_blocks)](
        q, k_cache, v_cache, out, block_tables, query_start_loc, seq_lens,
        scale * _LOG2E, num_seqs, min_q_len,
        q.stride(0), q.stride(1), out.stride(0), out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), block_tables.stride(0),
        QPK=num_q_heads // num_kv_heads, HEAD_DIM=head_dim, BLOCK_SIZE=block_size,
        BLOCK_M=block_m, BLOCK_N=block_n, DOT_PREC="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=warps, num_stages=stages,
    )
    return out
