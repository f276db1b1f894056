"""The 8-bit KV cache: four times the tokens of the fp32 cache in the same space (twice those
of a bf16 cache on the GPU), and prompt logprobs close to the full-precision cache's. Chunked
prefill makes every chunk attend over K/V read back from the fp8 cache."""
import pytest
import torch

from ember import LLM, SamplingParams

PROMPT = list(range(1000, 1060))


def _prompt_logprobs(model: str, kv_cache_dtype: str) -> tuple[int, torch.Tensor]:
    llm = LLM(model, kv_cache_dtype=kv_cache_dtype, max_num_batched_tokens=16, max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
    out = llm.generate([{"prompt_token_ids": PROMPT}], params, use_tqdm=False)[0]
    logprobs = [entry[token].logprob for entry, token in zip(out.prompt_logprobs[1:], PROMPT[1:])]
    return llm.llm_engine.block_manager.num_blocks, torch.tensor(logprobs)


@pytest.fixture(scope="module")
def full_precision(dense_checkpoint):
    return _prompt_logprobs(dense_checkpoint("qwen2"), "auto")


# Logprobs here are about -11 (a 49k vocabulary, random weights); K/V rounded to 2 (e5m2) or
# 3 (e4m3) mantissa bits move them by about 1% (measured: 0.13 and 0.07 at most).
@pytest.mark.parametrize("kv_cache_dtype, tolerance", [("fp8_e5m2", 0.3), ("fp8_e4m3", 0.15)])
def test_fp8_kv_cache(dense_checkpoint, full_precision, kv_cache_dtype, tolerance):
    blocks, expected = full_precision
    fp8_blocks, got = _prompt_logprobs(dense_checkpoint("qwen2"), kv_cache_dtype)
    assert fp8_blocks == 4 * blocks
    error = (got - expected).abs().max()
    assert 0 < error < tolerance
