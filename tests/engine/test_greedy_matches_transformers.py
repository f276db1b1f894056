"""The correctness oracle: Ember's greedy tokens equal transformers' greedy tokens exactly
(fp32, CPU), whatever batching, chunked prefill, preemption and prefix caching did."""
import random

import pytest

from ember import LLM, SamplingParams
from tests.tiny_models import hf_greedy

MAX_NEW = 12


def _prompts(seed: int, shared_prefix: list[int] = ()) -> list[list[int]]:
    rng = random.Random(seed)
    return [list(shared_prefix) + [rng.randrange(3, 49000) for _ in range(rng.randint(1, 60))]
            for _ in range(16)]


@pytest.fixture(scope="module")
def hf_reference(tiny_model):
    prompts = _prompts(0)
    return prompts, hf_greedy(tiny_model, prompts, MAX_NEW)


def _ember_greedy(model: str, prompts, **engine_args):
    llm = LLM(model, **engine_args)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    engine = llm.llm_engine
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks, "blocks leaked"
    return [o.outputs[0].token_ids for o in outs], engine


def test_batched_greedy_equals_transformers(tiny_model, hf_reference):
    prompts, expected = hf_reference
    got, _ = _ember_greedy(tiny_model, prompts)
    assert got == expected


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "overlapped"])
def test_chunked_prefill_and_preemption_keep_greedy_equal(tiny_model, hf_reference, async_scheduling):
    prompts, expected = hf_reference
    # 14 blocks of 16 tokens cannot hold 16 sequences of up to 72 tokens: preemption must happen;
    # a 32-token budget splits every longer prompt into chunks. Overlapped, each step is
    # scheduled before the previous step's tokens are known.
    got, engine = _ember_greedy(tiny_model, prompts, num_gpu_blocks_override=14,
                                max_num_batched_tokens=32, max_num_seqs=16,
                                async_scheduling=async_scheduling)
    assert engine.scheduler.num_preemptions > 0
    assert got == expected


def test_prefix_cache_hits_keep_greedy_equal(tiny_model):
    system = [random.Random(7).randrange(3, 49000) for _ in range(40)]
    prompts = _prompts(1, system)
    expected = hf_greedy(tiny_model, prompts, MAX_NEW)
    llm = LLM(tiny_model, max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs] == expected
    assert sum(o.num_cached_tokens for o in outs) >= 12 * 32  # later requests reuse the system prompt
    bm = llm.llm_engine.block_manager
    assert bm.num_free_blocks == bm.num_blocks


@pytest.mark.parametrize("async_scheduling", [False, True], ids=["sync", "overlapped"])
def test_everything_at_once_keeps_greedy_equal(tiny_model, async_scheduling):
    """Batching, chunked prefill, prefix cache hits and preemption in the same run."""
    system = [random.Random(11).randrange(3, 49000) for _ in range(40)]
    prompts = _prompts(2, system)
    expected = hf_greedy(tiny_model, prompts, MAX_NEW)
    got, engine = _ember_greedy(tiny_model, prompts, num_gpu_blocks_override=20, max_num_batched_tokens=32,
                                max_num_seqs=16, async_scheduling=async_scheduling)
    assert engine.scheduler.num_preemptions > 0
    assert engine.block_manager.prefix_hits > 0
    assert got == expected
