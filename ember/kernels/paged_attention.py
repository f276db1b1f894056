"""Unified paged attention over the block-table KV cache (prefill, chunked
prefill, prefix-cached prefill and decode in one launch), plus a split-K
(flash-decoding) variant and its reduce kernel for decode-heavy batches.

Each program owns BLOCK_M query rows = BLOCK_Q tokens x QPK q heads sharing one
kv head, so every K/V tile is loaded once for the whole GQA group. Softmax is
online in fp32, in the exp2 domain (scale folded with log2(e)).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.paged_attention_ref import paged_attention_ref
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel
from ember.kernels.prefill_attention import find_seq, prefill_attention
from ember.kernels.prefill_attention_dense import cudnn_prefill_attend, lone_sequence_attention

__all__ = ["decode_num_splits", "paged_attention", "paged_attention_ref", "pick_num_splits"]

_LOG2E = 1.4426950408889634
_MAX_SPLITS = 64


@dataclasses.dataclass(frozen=True)
class DecodeTuning:
    """The decode launch's knobs, from an H100 sweep of decode batches (28/4 heads, d=128)
    timed under CUDA graphs (num_stages=3 was ~20% slower there). The environment variable
    EMBER_DECODE_ATTENTION="tile_n=128,num_warps=8,..." overrides any of them, so one GPU call
    can sweep (benchmarks/decode_attention_gpu.py) and then run the engine with the winner."""
    tile_n: int = 64            # keys per loop step
    # An 8-bit (fp8) cache's keys per loop step: the same bytes as tile_n 16-bit keys. H200 sweep
    # over an e4m3 cache (session 8): 215.5 us for nano's batch and 66.6 for the 7B's at 128,
    # against 228.4 and 82.6 at 64 (one 320-token sequence: 12.7 us against 11.3).
    tile_n_8bit: int = 128
    num_warps: int = 4
    num_stages: int = 2
    programs_per_sm: int = 2    # split-K until about this many programs per SM (pick_num_splits)
    min_split_tokens: int = 512  # shorter pieces: the extra partial traffic and reduce cost more
    # Batches with fewer (sequence, KV head) programs than SMs are latency-bound, not bandwidth-
    # bound: more, shorter pieces. H200 sweep, one 320-token sequence of the 7B's heads: 12.1 us
    # against 17.3 with the knobs above, which cost a 128-sequence batch 1.6x. Four programs per
    # SM rather than 64 (session 9's sweep): the same for that sequence (11.7 us), 17.6 against
    # 18.0 for seed's 25 sequences and 36.7 against 39.6 for 8 of 4,096 tokens; seed end to end
    # 4,711 and 4,751 out tok/s against 4,530 and 4,604.
    few_programs_per_sm: int = 4
    few_min_split_tokens: int = 64
    # Decode programs ordered KV head fastest: the programs of one sequence's heads run together
    # and read its cache blocks ([slots, heads, dim]) as whole rows, not 256-byte pieces of them
    # apart in time (0: sequence fastest, as before; the sweep compares).
    head_major: int = 1

    @classmethod
    def from_env(cls) -> "DecodeTuning":
        spec = os.environ.get("EMBER_DECODE_ATTENTION", "")
        return cls(**{k.strip(): int(v) for k, v in (item.split("=") for item in spec.split(",") if item.strip())})


DECODE = DecodeTuning.from_env()
# Sequences with at least this many new tokens go to prefill_attention's large-tile kernel (a
# lone one to cuDNN, prefill_attention_dense); the rest (decodes, short prefills and chunks) stay here.
# H200: 16 prompts of 100..1024 tokens took 0.33-0.34 ms either way; an 8k prompt 1.43 ms there
# against 2.02 ms here.
LONG_Q_LEN = 1024
_NO_LONG = 2**31 - 1


@triton.jit
def _attend_tile(q, m_i, l_i, acc, kpos, q_pos, kv_end, bt_row, k_base, v_base, offs_d, d_mask,
                 scale_log2, stride_kb, stride_ks, stride_vb, stride_vs,
                 BLOCK_SIZE: tl.constexpr, MASKED: tl.constexpr, DOT_PREC: tl.constexpr):
    """One online-softmax step over the keys at positions kpos."""
    kmask = kpos < kv_end  # every position < seq_len was written; never load past it
    blk = tl.load(bt_row + kpos // BLOCK_SIZE, mask=kmask, other=0).to(tl.int64)
    slot_k = blk * stride_kb + (kpos % BLOCK_SIZE) * stride_ks
    slot_v = blk * stride_vb + (kpos % BLOCK_SIZE) * stride_vs
    # .to: an fp8 cache is widened to the query's dtype (fp16 then), a no-op otherwise.
    k = tl.load(k_base + slot_k[None, :] + offs_d[:, None], mask=kmask[None, :] & d_mask[:, None],
                other=0.0).to(q.dtype)
    s = tl.dot(q, k, input_precision=DOT_PREC) * scale_log2
    if MASKED:
        s = tl.where(kmask[None, :] & (kpos[None, :] <= q_pos[:, None]), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # fully masked row: no NaN
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    v = tl.load(v_base + slot_v[:, None] + offs_d[None, :], mask=kmask[:, None] & d_mask[None, :],
                other=0.0).to(q.dtype)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PREC)
    return m_new, l_i, acc


# num_seqs and the block-table stride change every step: specializing on their values would
# compile new variants in the middle of serving.
# num_splits and min_split_tiles follow the batch size (pick_num_splits, split_knobs): runtime
# values, so the CUDA-graph ladder compiles one split variant instead of one per batch size.
@triton.jit(do_not_specialize=["num_seqs", "stride_bt", "long_q_len", "num_splits", "min_split_tiles"])
def _attn_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, bt_ptr, qsl_ptr, seq_lens_ptr,
    part_m_ptr, part_l_ptr, part_acc_ptr,
    scale_log2, num_seqs, num_q_heads, long_q_len, num_splits, min_split_tiles,
    stride_qt, stride_qh, stride_ot, stride_oh,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, stride_bt,
    QPK: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_Q: tl.constexpr,
    TILE_N: tl.constexpr, SPLIT: tl.constexpr,
    DIRECT_MAP: tl.constexpr, DOT_PREC: tl.constexpr, HEAD_MAJOR: tl.constexpr, USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    if HEAD_MAJOR:
        kv_head = tl.program_id(0)
        q_block = tl.program_id(1)
    else:
        q_block = tl.program_id(0)
        kv_head = tl.program_id(1)
    split = tl.program_id(2)
    if DIRECT_MAP:  # every sequence fits in one q block: program id == sequence
        seq = q_block
        local_qb = q_block * 0
    else:
        seq = find_seq(qsl_ptr, q_block, num_seqs, BLOCK_Q)
        local_qb = q_block - (tl.load(qsl_ptr + seq) // BLOCK_Q + seq)
    q_start = tl.load(qsl_ptr + seq)
    q_len = tl.load(qsl_ptr + seq + 1) - q_start
    if (local_qb * BLOCK_Q >= q_len) | (q_len >= long_q_len):  # long: prefill_attention's
        return
    seq_len = tl.load(seq_lens_ptr + seq)
    ctx_len = seq_len - q_len  # keys cached before this chunk

    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    offs_n = tl.arange(0, TILE_N)
    d_mask = offs_d < HEAD_DIM
    q_local = local_qb * BLOCK_Q + offs_m // QPK
    head = kv_head * QPK + offs_m % QPK
    row_mask = (offs_m < BLOCK_Q * QPK) & (q_local < q_len)
    q_pos = ctx_len + q_local  # absolute position: attends to keys 0..q_pos
    tok = (q_start + q_local).to(tl.int64)
    q = tl.load(q_ptr + tok[:, None] * stride_qt + head[:, None] * stride_qh + offs_d[None, :],
                mask=row_mask[:, None] & d_mask[None, :], other=0.0)
    if k_ptr.dtype.element_ty.is_fp8():
        # Both products in fp16: sm_89+ widens fp8 to fp16 in one instruction a pair. Widened
        # to bf16, the fp8 cache read half the bytes and still ran slower than a bf16 cache
        # (H200, nano: 165.8 us a layer's attention against 143.4; 146.1 in fp16).
        q = q.to(tl.float16)

    # Causal: this block needs keys up to its last token's position only.
    kv_end = tl.minimum(seq_len, ctx_len + tl.minimum((local_qb + 1) * BLOCK_Q, q_len))
    num_tiles = tl.cdiv(kv_end, TILE_N)
    # Splits share the real length (not the max_seq_len bound) evenly, but no
    # piece is shorter than min_split_tiles: short sequences leave trailing
    # splits empty (they only write m=-inf), cheap under a loose graph bound.
    tiles_per_split = tl.maximum(tl.cdiv(num_tiles, num_splits), min_split_tiles)
    t_lo = split * tiles_per_split
    t_hi = tl.minimum(num_tiles, t_lo + tiles_per_split)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM_PAD], tl.float32)
    bt_row = bt_ptr + seq.to(tl.int64) * stride_bt
    k_base = k_ptr + kv_head * stride_kh
    v_base = v_ptr + kv_head * stride_vh
    # Tiles wholly below the causal diagonal (keys <= the block's first query
    # position) need no masking; only the last few tiles do.
    t_mid = tl.maximum(t_lo, tl.minimum(t_hi, (ctx_len + local_qb * BLOCK_Q + 1) // TILE_N))
    for t in range(t_lo, t_mid):
        m_i, l_i, acc = _attend_tile(
            q, m_i, l_i, acc, t * TILE_N + offs_n, q_pos, kv_end, bt_row, k_base, v_base, offs_d, d_mask,
            scale_log2, stride_kb, stride_ks, stride_vb, stride_vs, BLOCK_SIZE, False, DOT_PREC)
    for t in range(t_mid, t_hi):
        m_i, l_i, acc = _attend_tile(
            q, m_i, l_i, acc, t * TILE_N + offs_n, q_pos, kv_end, bt_row, k_base, v_base, offs_d, d_mask,
            scale_log2, stride_kb, stride_ks, stride_vb, stride_vs, BLOCK_SIZE, True, DOT_PREC)

    if not SPLIT:
        l_safe = tl.where(l_i == 0.0, 1.0, l_i)
        o = acc / l_safe[:, None]
        tl.store(out_ptr + tok[:, None] * stride_ot + head[:, None] * stride_oh + offs_d[None, :],
                 o.to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & d_mask[None, :])
    else:  # partial results: (max, sum) in log2 domain and the unnormalised acc
        row = (tok * num_q_heads + head) * num_splits + split
        tl.store(part_m_ptr + row, m_i, mask=row_mask)
        tl.store(part_l_ptr + row, l_i, mask=row_mask)
        tl.store(part_acc_ptr + row[:, None] * HEAD_DIM_PAD + offs_d[None, :], acc,
                 mask=row_mask[:, None])


@triton.jit(do_not_specialize=["num_seqs", "num_splits"])
def _reduce_kernel(
    part_m_ptr, part_l_ptr, part_acc_ptr, out_ptr, qsl_ptr, num_seqs, num_q_heads, num_splits,
    stride_ot, stride_oh,
    SPLITS_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr, USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    tok = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    # Padding tokens (past qsl[num_seqs]) have no partials: their loads are masked -> zeros.
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    live = (tok + offs_s * 0) < tl.load(qsl_ptr + num_seqs)  # vector: interpreter can't mix
    s_mask = (offs_s < num_splits) & live
    row = (tok * num_q_heads + head) * num_splits + offs_s
    m = tl.load(part_m_ptr + row, mask=s_mask, other=float("-inf"))
    l = tl.load(part_l_ptr + row, mask=s_mask, other=0.0)
    acc = tl.load(part_acc_ptr + row[:, None] * HEAD_DIM_PAD + offs_d[None, :],
                  mask=s_mask[:, None], other=0.0)
    m_max = tl.max(m, 0)
    w = tl.exp2(m - tl.where(m_max == float("-inf"), 0.0, m_max))  # empty splits weigh 0
    denom = tl.sum(w * l, 0)
    o = tl.sum(w[:, None] * acc, 0) / tl.where(denom == 0.0, 1.0, denom)
    tl.store(out_ptr + tok * stride_ot + head * stride_oh + offs_d, o.to(out_ptr.dtype.element_ty),
             mask=offs_d < HEAD_DIM)


def _splits_pad(num_splits: int) -> int:
    """The reduce kernel's split axis: one size covers every count up to _MAX_SPLITS, so all
    batch sizes share one compiled variant (masked lanes load nothing)."""
    return triton.next_power_of_2(max(num_splits, _MAX_SPLITS))


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 132  # interpreter: pretend H100 so the heuristic behaves the same
    return _sm_count(device.index if device.index is not None else torch.cuda.current_device())


def _block_config(qpk: int, head_dim_pad: int, max_query_len: int, cache_itemsize: int = 2):
    """(BLOCK_M, BLOCK_Q, TILE_N, num_warps, num_stages) for this batch shape and cache dtype."""
    min_m = max(16, triton.next_power_of_2(qpk))
    if max_query_len <= min_m // qpk:  # decode / short spec-decode: small M, memory bound
        tile_n = DECODE.tile_n_8bit if cache_itemsize == 1 else DECODE.tile_n
        warps, stages = DECODE.num_warps, DECODE.num_stages
        if head_dim_pad > 128:  # the K/V tiles' shared memory grows with the head
            tile_n = max(16, tile_n * 128 // head_dim_pad)
        return min_m, min_m // qpk, tile_n, warps, stages
    # Prefill: H100/H200 sweeps (d=128, 16 seqs of 100..1024) favoured 64x32 tiles, 4 warps.
    block_m = max(min_m, 64)
    return block_m, block_m // qpk, 32, 4 if head_dim_pad <= 128 else 8, 2


def pick_num_splits(num_seqs: int, num_kv_heads: int, max_query_len: int, max_seq_len: int,
                    block_q: int, num_sms: int) -> int:
    """Split-K heuristic. Only batches whose sequences each fit in one q block
    (decode, short spec-decode) are split. Then splits = ceil(2 * SMs / programs)
    with programs = num_seqs * num_kv_heads, i.e. about two programs per SM,
    capped so each piece keeps >= DECODE.min_split_tokens keys of max_seq_len and at
    _MAX_SPLITS; batches of fewer programs than SMs split far finer (split_knobs). In-kernel, pieces divide each sequence's *real* length.
    H100 (us, graph replay): 8x4096 -> 8 splits 33 vs 1 split 116;
    1x32768 -> 64: 33 vs 867; 48x4096 -> 2: 144 vs 160; 64x512 and 128x1024 -> 1."""
    if max_query_len > block_q:
        return 1
    programs = max(1, num_seqs * num_kv_heads)
    per_sm, min_tokens = split_knobs(num_seqs, num_kv_heads, num_sms)
    splits = min(_MAX_SPLITS, max_seq_len // min_tokens, triton.cdiv(per_sm * num_sms, programs))
    return max(1, splits)


def split_knobs(num_seqs: int, num_kv_heads: int, num_sms: int) -> tuple[int, int]:
    """(programs per SM, shortest piece in keys) for a decode batch of this many programs."""
    if num_seqs * num_kv_heads < num_sms:
        return DECODE.few_programs_per_sm, DECODE.few_min_split_tokens
    return DECODE.programs_per_sm, DECODE.min_split_tokens


def decode_num_splits(num_seqs: int, num_q_heads: int, num_kv_heads: int, head_dim: int, max_seq_len: int,
                      device: torch.device) -> int:
    """The split count a decode step (one new token per sequence) is launched with: all that
    the context bound changes in it, so bounds that agree can share one CUDA graph."""
    d_pad = max(16, triton.next_power_of_2(head_dim))
    block_q = _block_config(num_q_heads // num_kv_heads, d_pad, 1)[1]
    return pick_num_splits(num_seqs, num_kv_heads, 1, max_seq_len, block_q, _num_sms(device))


def paged_attention(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale: float,
                    max_query_len: int, max_seq_len: int, out=None, num_splits: int | None = None):
    """Causal attention of q [num_tokens, Hq, D] over the paged cache; returns out.

    max_query_len / max_seq_len may be upper bounds (CUDA graphs): they only pick
    the launch config. num_splits forces the split-K factor (None: heuristic);
    forced splits cut every sequence evenly, heuristic ones keep pieces of at
    least DECODE.min_split_tokens keys.
    When max_query_len >= LONG_Q_LEN (and head_dim is a power of two), the sequences with
    that many new tokens are attended by prefill_attention and the others here; a lone such
    sequence on CUDA by cuDNN (prefill_attention_dense) where it serves, which takes
    max_query_len and max_seq_len as its exact lengths.
    Rows of padding tokens (index >= query_start_loc[-1]) are left unspecified.
    """
    require_triton()
    num_tokens, num_q_heads, head_dim = q.shape
    _, block_size, num_kv_heads, _ = k_cache.shape
    num_seqs = seq_lens.shape[0]
    assert num_q_heads % num_kv_heads == 0 and block_size & (block_size - 1) == 0
    assert k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1 and block_tables.stride(-1) == 1
    assert k_cache.dtype == v_cache.dtype and (k_cache.dtype == q.dtype or k_cache.dtype.itemsize == 1)
    assert query_start_loc.dtype == seq_lens.dtype == block_tables.dtype == torch.int32
    if q.stride(-1) != 1:
        q = q.contiguous()
    attend = (cudnn_prefill_attend(q.device, num_q_heads, num_kv_heads, head_dim, q.dtype)
              if num_seqs == 1 and max_query_len >= LONG_Q_LEN and num_splits is None and q.is_cuda else None)
    if attend is not None:
        # A lone long sequence (a long prompt, a chunk of one; the bounds of an eager step are
        # exact): cuDNN, 1.4-1.7x the Triton prefill kernel on the H200.
        return lone_sequence_attention(q, k_cache, v_cache, block_tables, scale, max_query_len, max_seq_len, out,
                                       attend)
    if out is None:
        out = torch.empty_like(q)
    assert out.shape == q.shape and out.stride(-1) == 1
    if num_tokens == 0 or num_seqs == 0:
        return out
    qpk = num_q_heads // num_kv_heads
    d_pad = max(16, triton.next_power_of_2(head_dim))
    long_q_len = _NO_LONG
    if max_query_len >= LONG_Q_LEN and head_dim == d_pad and num_splits is None:
        # Both launches always: max_query_len may be a bound, so which sequences are long is
        # known only on the device; this kernel's programs of long sequences return at once.
        prefill_attention(q, k_cache, v_cache, block_tables, query_start_loc, seq_lens, scale, max_query_len,
                          LONG_Q_LEN, out)
        long_q_len = LONG_Q_LEN
    block_m, block_q, tile_n, warps, stages = _block_config(qpk, d_pad, max_query_len, k_cache.element_size())
    direct = max_query_len <= block_q
    min_split_tiles = 1
    if num_splits is None:
        num_splits = pick_num_splits(num_seqs, num_kv_heads, max_query_len, max_seq_len,
                                     block_q, _num_sms(q.device))
        min_split_tiles = max(1, split_knobs(num_seqs, num_kv_heads, _num_sms(q.device))[1] // tile_n)
    q_blocks = num_seqs if direct else num_tokens // block_q + num_seqs
    if num_splits > 1:
        part_m = torch.empty((num_tokens, num_q_heads, num_splits), dtype=torch.float32, device=q.device)
        part_l = torch.empty_like(part_m)
        part_acc = torch.empty((num_tokens, num_q_heads, num_splits, d_pad), dtype=torch.float32,
                               device=q.device)
    else:
        part_m = part_l = part_acc = out  # unused
    head_major = direct and bool(DECODE.head_major)  # a decode batch's q blocks fit the grid's 2nd axis
    grid = (num_kv_heads, q_blocks, num_splits) if head_major else (q_blocks, num_kv_heads, num_splits)
    _attn_kernel[grid](
        q, k_cache, v_cache, out, block_tables, query_start_loc, seq_lens,
        part_m, part_l, part_acc,
        scale * _LOG2E, num_seqs, num_q_heads, long_q_len, num_splits, min_split_tiles,
        q.stride(0), q.stride(1), out.stride(0), out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), block_tables.stride(0),
        QPK=qpk, HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, BLOCK_SIZE=block_size,
        BLOCK_M=block_m, BLOCK_Q=block_q, TILE_N=tile_n, SPLIT=num_splits > 1,
        DIRECT_MAP=direct, DOT_PREC="ieee" if q.dtype == torch.float32 else "tf32", HEAD_MAJOR=head_major,
        num_warps=warps, num_stages=stages, **pdl_launch(q.device),
    )
    if num_splits > 1:
        _reduce_kernel[(num_tokens, num_q_heads)](
            part_m, part_l, part_acc, out, query_start_loc, num_seqs, num_q_heads, num_splits,
            out.stride(0), out.stride(1),
            SPLITS_PAD=_splits_pad(num_splits),
            HEAD_DIM=head_dim, HEAD_DIM_PAD=d_pad, num_warps=4, **pdl_launch(q.device),
        )
    return out
