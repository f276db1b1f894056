"""paged_attention (Triton) vs paged_attention_ref vs dense SDPA.

Every cache slot that no sequence position owns is NaN (partial tail blocks,
spare blocks, unused block-table entries point at a NaN block): any leak shows.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from ember.kernels.paged_attention import paged_attention, paged_attention_ref, pick_num_splits


def build_case(q_lens, seq_lens, num_q_heads, num_kv_heads, head_dim, dtype, device,
               block_size=16, pad_seqs=0, pad_tokens=0):
    """Random batch in a NaN-poisoned cache with shuffled block ids.

    pad_seqs / pad_tokens mimic CUDA-graph padding: empty sequences (q_len 0,
    seq_len 0) and trailing tokens that belong to no sequence."""
    n_blocks = [math.ceil(n / block_size) for n in seq_lens]
    total = sum(n_blocks) + 3
    perm = torch.randperm(total)
    shape = (total, block_size, num_kv_heads, head_dim)
    k_cache = torch.full(shape, float("nan"))
    v_cache = torch.full(shape, float("nan"))
    num_seqs = len(seq_lens) + pad_seqs
    block_tables = torch.full((num_seqs, max(n_blocks) + 2), int(perm[-1]), dtype=torch.int32)
    dense_k, dense_v, start = [], [], 0
    for s, (n, seq_len) in enumerate(zip(n_blocks, seq_lens)):
        ids = perm[start:start + n]
        start += n
        block_tables[s, :n] = ids.int()
        k, v = torch.randn(seq_len, num_kv_heads, head_dim), torch.randn(seq_len, num_kv_heads, head_dim)
        pos = torch.arange(seq_len)
        k_cache[ids[pos // block_size], pos % block_size] = k
        v_cache[ids[pos // block_size], pos % block_size] = v
        dense_k.append(k.to(dtype).float())
        dense_v.append(v.to(dtype).float())
    num_tokens = sum(q_lens) + pad_tokens
    qsl = torch.zeros(num_seqs + 1, dtype=torch.int32)
    qsl[1:len(q_lens) + 1] = torch.tensor(q_lens).cumsum(0).int()
    qsl[len(q_lens) + 1:] = sum(q_lens)
    lens = torch.tensor(list(seq_lens) + [0] * pad_seqs, dtype=torch.int32)
    q = torch.randn(num_tokens, num_q_heads, head_dim)
    return dict(
        q=q.to(device, dtype), k_cache=k_cache.to(device, dtype), v_cache=v_cache.to(device, dtype),
        block_tables=block_tables.to(device), query_start_loc=qsl.to(device), seq_lens=lens.to(device),
        scale=head_dim ** -0.5, max_query_len=max(q_lens), max_seq_len=max(seq_lens),
    ), dense_k, dense_v


def dense_sdpa(case, dense_k, dense_v):
    """Independent check: per sequence, dense K/V, explicit causal bool mask, SDPA."""
    q = case["q"].float().cpu()
    qsl = case["query_start_loc"].tolist()
    qpk = q.shape[1] // dense_k[0].shape[1]
    outs = []
    for s, (k, v) in enumerate(zip(dense_k, dense_v)):
        qs = q[qsl[s]:qsl[s + 1]].transpose(0, 1)
        q_len, seq_len = qs.shape[1], k.shape[0]
        mask = torch.arange(seq_len)[None, :] <= torch.arange(seq_len - q_len, seq_len)[:, None]
        kk = k.repeat_interleave(qpk, dim=1).transpose(0, 1)
        vv = v.repeat_interleave(qpk, dim=1).transpose(0, 1)
        outs.append(F.scaled_dot_product_attention(qs, kk, vv, attn_mask=mask, scale=case["scale"])
                    .transpose(0, 1))
    return torch.cat(outs)


# (q_lens, seq_lens): decodes with context, fresh prefill, chunked prefill over a
# cached prefix spanning several q blocks, a tiny prefill, a decode at position 0.
MIXED = ([1, 5, 1, 40, 3, 1], [9, 5, 70, 110, 3, 1])


def _check(case, out, ref, tol, dtype):
    n = int(case["query_start_loc"][-1])
    assert not torch.isnan(out[:n]).any()
    torch.testing.assert_close(out[:n].float(), ref[:n].float(), **tol(dtype))


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("qpk", [1, 2, 7])
def test_mixed_batch(device, dtype, tol, qpk, head_dim):
    case, _, _ = build_case(*MIXED, 2 * qpk, 2, head_dim, dtype, device)
    ref = paged_attention_ref(**case)
    _check(case, paged_attention(**case), ref, tol, dtype)


@pytest.mark.parametrize("num_splits", [None, 3, 40])
@pytest.mark.parametrize("qpk", [1, 7])
def test_decode(device, dtype, tol, qpk, num_splits):
    case, _, _ = build_case([1] * 5, [1, 17, 33, 64, 100], 2 * qpk, 2, 64, dtype, device)
    ref = paged_attention_ref(**case)
    _check(case, paged_attention(**case, num_splits=num_splits), ref, tol, dtype)


def test_decode_long_context_takes_split_path(device, dtype, tol):
    # Two programs on 132 SMs: 1100 keys split into pieces of >= 64 (17 splits); 300 keys fill
    # only some of them, the other splits are empty.
    case, _, _ = build_case([1, 1], [1100, 300], 4, 1, 64, dtype, device)
    assert pick_num_splits(2, 1, 1, 1100, 16, 132) == 1100 // 64  # the heuristic really splits here
    ref = paged_attention_ref(**case)
    _check(case, paged_attention(**case), ref, tol, dtype)


@pytest.mark.parametrize("block_size", [8, 32])
def test_split_with_prefill_and_block_sizes(device, tol, block_size):
    case, _, _ = build_case(*MIXED, 4, 2, 64, torch.float32, device, block_size=block_size)
    ref = paged_attention_ref(**case)
    _check(case, paged_attention(**case, num_splits=2), ref, tol, torch.float32)


@pytest.mark.parametrize("num_splits", [1, 4, None])
def test_cuda_graph_style_padding(device, tol, num_splits):
    """Padded sequences/tokens and loose upper bounds must not change real rows."""
    case, _, _ = build_case([1, 1, 1], [20, 3, 90], 4, 2, 64, torch.float16, device,
                            pad_seqs=2, pad_tokens=3)
    ref = paged_attention_ref(**case)
    case.update(max_query_len=1, max_seq_len=4096)
    out = torch.full_like(case["q"], float("nan"))
    paged_attention(**case, out=out, num_splits=num_splits)
    _check(case, out, ref, tol, torch.float16)


@pytest.mark.parametrize("qpk", [1, 7])
def test_ref_matches_dense_sdpa(qpk):
    case, dk, dv = build_case(*MIXED, 2 * qpk, 2, 64, torch.float32, "cpu")
    ref = paged_attention_ref(**case)
    torch.testing.assert_close(ref, dense_sdpa(case, dk, dv), atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("q_lens, seq_lens", [([1] * 5, [1, 17, 300, 64, 1100]), MIXED], ids=["decode", "mixed"])
def test_an_e4m3_cache_under_bf16_queries_attends_as_its_bf16_copy(q_lens, seq_lens):
    """bf16 queries over an e4m3 cache widen it exactly in the kernel: the output is the one
    over the same cache widened by torch beforehand."""
    case, _, _ = build_case(q_lens, seq_lens, 8, 2, 128, torch.bfloat16, "cuda")
    fp8 = dict(case, k_cache=case["k_cache"].to(torch.float8_e4m3fn), v_cache=case["v_cache"].to(torch.float8_e4m3fn))
    widened = dict(case, k_cache=fp8["k_cache"].to(torch.bfloat16), v_cache=fp8["v_cache"].to(torch.bfloat16))
    n = int(case["query_start_loc"][-1])
    out = paged_attention(**fp8)[:n]
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out.float(), paged_attention(**widened)[:n].float(), atol=1e-2, rtol=0)
