"""prefill_attention (the large-tile kernel for long query runs) and paged_attention's routing of
long sequences to it, against paged_attention_ref, in caches whose unowned slots are NaN.

On the CPU (Triton's interpreter) the tiles are shrunk through `config` so that a few dozen
tokens already span several q blocks, full key tiles and diagonal tiles."""

import pytest
import torch

import ember.kernels.paged_attention as pa
from ember.kernels.paged_attention import paged_attention, paged_attention_ref
from ember.kernels.prefill_attention import prefill_attention
from tests.kernels.test_paged_attention import build_case

SMALL = (32, 16, 4, 2)  # BLOCK_M, BLOCK_N, warps, stages


def _rows(case, seqs):
    qsl = case["query_start_loc"].tolist()
    return torch.cat([torch.arange(qsl[s], qsl[s + 1]) for s in seqs])


def _prefill(case, min_q_len, **kw):
    out = torch.full_like(case["q"], float("nan"))
    prefill_attention(case["q"], case["k_cache"], case["v_cache"], case["block_tables"], case["query_start_loc"],
                      case["seq_lens"], case["scale"], case["max_query_len"], min_q_len, out, **kw)
    return out


@pytest.mark.parametrize("qpk", [1, 7])
def test_fresh_prompts_and_chunks_over_cached_context(device, dtype, tol, qpk):
    # fresh prompts (one shorter than a q block), chunks whose context is not a multiple of
    # the key tile or the cache block, and one with more context than queries.
    case, _, _ = build_case([70, 9, 45, 33], [70, 9, 45 + 21, 33 + 100], 2 * qpk, 2, 64, dtype, device)
    ref = paged_attention_ref(**case)
    out = _prefill(case, 1, config=SMALL)
    torch.testing.assert_close(out.float(), ref.float(), **tol(dtype))


def test_short_sequences_are_left_to_the_unified_kernel(device, tol):
    case, _, _ = build_case([40, 1, 3, 50], [40, 60, 3, 90], 4, 2, 64, torch.float32, device)
    out = _prefill(case, 20, config=SMALL)
    long_rows, short_rows = _rows(case, [0, 3]), _rows(case, [1, 2])
    ref = paged_attention_ref(**case)
    torch.testing.assert_close(out[long_rows], ref[long_rows], **tol(torch.float32))
    assert torch.isnan(out[short_rows]).all()


@pytest.mark.parametrize("cache_dtype", [torch.float8_e5m2, torch.float8_e4m3fn], ids=["e5m2", "e4m3"])
def test_fp8_cache(device, tol, cache_dtype):
    case, _, _ = build_case([40, 20], [40, 70], 4, 2, 64, torch.float16, device)
    case["k_cache"], case["v_cache"] = case["k_cache"].to(cache_dtype), case["v_cache"].to(cache_dtype)
    ref = paged_attention_ref(**case)
    torch.testing.assert_close(_prefill(case, 1, config=SMALL).float(), ref.float(), **tol(torch.float16))


@pytest.mark.parametrize("block_size", [8, 32])
def test_block_sizes(device, tol, block_size):
    case, _, _ = build_case([40, 20], [40, 90], 4, 2, 64, torch.float32, device, block_size=block_size)
    ref = paged_attention_ref(**case)
    torch.testing.assert_close(_prefill(case, 1, config=SMALL), ref, **tol(torch.float32))


def test_paged_attention_routes_long_sequences(device, dtype, tol, monkeypatch):
    """One batch: a long prompt, a long chunk over cached context, decodes and a short chunk;
    every row equals the reference whichever kernel took it, padding rows aside."""
    monkeypatch.setattr(pa, "LONG_Q_LEN", 24)
    case, _, _ = build_case([30, 1, 5, 1, 26], [30, 40, 50, 3, 26 + 37], 14, 2, 64, dtype, device, pad_tokens=3)
    ref = paged_attention_ref(**case)
    out = paged_attention(**case)
    n = int(case["query_start_loc"][-1])
    assert not torch.isnan(out[:n]).any()
    torch.testing.assert_close(out[:n].float(), ref[:n].float(), **tol(dtype))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("q_lens,seq_lens", [([3000], [3000]), ([1500, 1, 700], [4000, 900, 700])],
                         ids=["fresh", "chunk+decode+fresh"])
def test_7b_shape_bf16_on_gpu(q_lens, seq_lens, tol):
    """The Qwen2.5-7B attention shape (28 q / 4 kv heads, d=128) in bf16 as the engine calls it: a
    lone 3000-token prompt goes to cuDNN where it serves; a 1500-token chunk beside a
    decode and a short prompt to the prefill kernel (default tiles) and the unified kernel."""
    case, _, _ = build_case(q_lens, seq_lens, 28, 4, 128, torch.bfloat16, "cuda")
    ref = paged_attention_ref(**{**case, "q": case["q"].float(), "k_cache": case["k_cache"].float(),
                                 "v_cache": case["v_cache"].float()})
    out = paged_attention(**case)
    torch.testing.assert_close(out.float(), ref, **tol(torch.bfloat16))


def test_engine_greedy_with_routed_prefill_equals_transformers(tiny_llama, monkeypatch):
    """The whole engine on the Triton attention (the CPU interpreter here): prompts long enough to
    be routed to the prefill kernel, chunked by a small token budget, one sharing a cached
    prefix with an earlier one, decoding beside another's prefill; greedy tokens equal
    transformers'."""
    import random

    from ember import LLM, SamplingParams
    from tests.tiny_models import hf_greedy

    monkeypatch.setattr(pa, "LONG_Q_LEN", 40)
    routed = []
    monkeypatch.setattr(pa, "prefill_attention", lambda *a, **k: routed.append(1) or prefill_attention(*a, **k))
    rng = random.Random(3)
    shared = [rng.randrange(3, 49000) for _ in range(64)]
    prompts = [[rng.randrange(3, 49000) for _ in range(n)] for n in (150, 45, 9)]
    prompts.append(shared + [rng.randrange(3, 49000) for _ in range(50)])
    prompts.append(shared + [rng.randrange(3, 49000) for _ in range(70)])
    llm = LLM(tiny_llama, attention_backend="triton", max_num_batched_tokens=96, max_num_seqs=2)
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs] == hf_greedy(tiny_llama, prompts, 4)
    assert routed and outs[-1].num_cached_tokens >= 48  # both paths and a prefix-cache hit ran
