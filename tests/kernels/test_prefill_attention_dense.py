"""prefill_attention_dense: the paged K/V gather, and the split of a chunk into its bucketed
context and a padded causal square (merged by log-sum-exp), against paged_attention_ref on the
CPU with a plain torch `attend` standing in for cuDNN, which runs on the GPU only."""

import pytest
import torch

from ember.kernels.paged_attention_ref import paged_attention_ref
from ember.kernels.prefill_attention_dense import (cudnn_prefill_attend, gather_kv, lone_sequence_attention,
                                                   split_at_context)
from tests.kernels.test_paged_attention import build_case


def _attend(q, k, v, causal, scale, lse=True):
    """What cuDNN returns: out and the natural-log log-sum-exp of each query row's scores (K/V
    with fewer heads serve q heads in groups: GQA)."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return (torch.softmax(s, -1) @ v.float()).to(q.dtype), torch.logsumexp(s, -1)


def test_gather_kv_is_the_sequence_in_position_order():
    case, dense_k, dense_v = build_case([5, 3], [5, 37], 4, 2, 16, torch.float32, "cpu")
    assert torch.equal(gather_kv(case["k_cache"], case["block_tables"][1], 37), dense_k[1])
    assert torch.equal(gather_kv(case["v_cache"], case["block_tables"][0], 5), dense_v[0])


# (q_len, seq_len) with bucket 16: a fresh prompt (padding rows at the end of the square), a
# chunk whose context is not a multiple of the bucket (its remainder leads the square), one
# whose context is, a context shorter than one bucket, a single query, and a chunk that needs no
# padding at all.
SPLITS = [(20, 20), (20, 53), (20, 52), (20, 29), (1, 9), (32, 48)]


@pytest.mark.parametrize("q_len,seq_len", SPLITS, ids=["fresh", "chunk", "aligned", "short-context", "one-query", "no-padding"])
@pytest.mark.parametrize("qpk", [1, 7])
def test_split_at_context_equals_causal_attention(device, dtype, tol, q_len, seq_len, qpk):
    """The merge is a Triton kernel: on the CPU through the interpreter."""
    case, dense_k, dense_v = build_case([q_len], [seq_len], 2 * qpk, 2, 16, dtype, device)
    ref = paged_attention_ref(**case)
    k, v = (x[0].to(device, dtype) for x in (dense_k, dense_v))
    shapes = []

    def attend(q, k, v, causal, scale, lse=True):
        shapes.append((q.shape[2], k.shape[2]))
        return _attend(q, k, v, causal, scale, lse)
    out = split_at_context(case["q"], k, v, q_len, seq_len, case["scale"], attend, bucket=16)
    assert out.is_contiguous() and out.dtype == dtype
    torch.testing.assert_close(out.float(), ref.float(), **tol(dtype))
    assert all(n % 16 == 0 for shape in shapes for n in shape[1:]) and all(n % 16 == 0 for n, _ in shapes)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("q_len,seq_len", [(1500, 1500), (700, 2100), (2048, 6144)],
                         ids=["fresh", "chunk", "aligned-chunk"])
def test_lone_sequence_through_cudnn_the_way_the_probe_picks(q_len, seq_len, tol):
    """The way of calling cuDNN the probe picks is right at the 7B shape. On Hopper (H100/H200) it
    must pick one: it is the fast path there."""
    attend = cudnn_prefill_attend(torch.device("cuda", 0), 28, 4, 128, torch.bfloat16)
    assert attend is not None or torch.cuda.get_device_capability() != (9, 0)
    if attend is None:
        return
    case, _, _ = build_case([q_len], [seq_len], 28, 4, 128, torch.bfloat16, "cuda")
    ref = paged_attention_ref(**{**case, "q": case["q"].float(), "k_cache": case["k_cache"].float(),
                                 "v_cache": case["v_cache"].float()})
    out = lone_sequence_attention(case["q"], case["k_cache"], case["v_cache"], case["block_tables"],
                                  case["scale"], q_len, seq_len, None, attend)
    torch.testing.assert_close(out.float(), ref, **tol(torch.bfloat16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_long_prompt_logprobs_close_to_transformers(tmp_path, monkeypatch):
    """A 3000-token prompt alone, in chunks of 1024 over its cached context, through cuDNN (where it
    serves), then another through the Triton prefill kernel, in one engine: bf16 prompt logprobs
    within the GPU suite's bound of transformers'."""
    import gc
    import random

    from transformers import AutoModelForCausalLM, Qwen3Config

    import ember.kernels.paged_attention as pa
    from ember import LLM, SamplingParams

    cfg = Qwen3Config(vocab_size=32000, hidden_size=1024, intermediate_size=3072, num_hidden_layers=2,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
    for p in hf.parameters():
        p.data.normal_(0, 0.05)
    hf.save_pretrained(str(tmp_path))
    gc.collect()
    torch.cuda.empty_cache()
    llm = LLM(str(tmp_path), max_model_len=4096, max_num_batched_tokens=1024, max_num_seqs=1,
              gpu_memory_utilization=0.5, skip_tokenizer_init=True, enforce_eager=True)
    rng = random.Random(0)
    for path in ("cudnn", "triton"):
        if path == "triton":
            monkeypatch.setattr(pa, "cudnn_prefill_attend", lambda *shape: None)
        prompt = [rng.randrange(100, 32000) for _ in range(3000)]  # a new one: no prefix-cache hit
        out = llm.generate([{"prompt_token_ids": prompt}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                           use_tqdm=False)[0]
        with torch.no_grad():
            ref = hf(torch.tensor([prompt], device="cuda")).logits[0].float().log_softmax(-1)
        got = torch.tensor([out.prompt_logprobs[i][prompt[i]].logprob for i in range(1, len(prompt))])
        want = ref[torch.arange(len(prompt) - 1), torch.tensor(prompt[1:], device="cuda")].cpu()
        assert (got - want).abs().max().item() < 0.25, path
    del llm
    gc.collect()
    torch.cuda.empty_cache()
