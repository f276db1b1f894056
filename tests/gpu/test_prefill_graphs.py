"""On the GPU: a lone request's prompt replayed from a prefill CUDA graph gives the tokens the
eager forward gives (float32, so that only the padding and the graphs could make them differ),
at the edges of the graphs' sizes and past the largest; prompt logprobs stay on the eager path."""
import gc
import random

import pytest
import torch

from tests.tiny_models import build_tiny_checkpoint

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# 1: a decode graph's; 2..512: the prefill graphs' edges (16, 32, 64, 128, 512); 513: eager.
PROMPT_LENS = (1, 2, 15, 16, 17, 64, 100, 512, 513)
VOCAB = 1024


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each engine's outputs for the same requests, sent one at a time (a step of one chunk)."""
    from ember import LLM, SamplingParams

    # Real head shapes (head_dim 128, 4 q heads a kv head), a small model.
    path = build_tiny_checkpoint(str(tmp_path_factory.mktemp("prefill_graphs")), "qwen3", with_tokenizer=False,
                                 vocab_size=VOCAB, hidden_size=256, intermediate_size=512, num_attention_heads=8,
                                 num_key_value_heads=2, head_dim=128, max_position_embeddings=2048)
    rng = random.Random(0)
    prompts = [[rng.randrange(VOCAB) for _ in range(n)] for n in PROMPT_LENS]
    logprobs_prompt = [rng.randrange(VOCAB) for _ in range(40)]
    greedy = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    with_prompt_logprobs = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True, prompt_logprobs=3)
    results = {}
    for eager in (True, False):
        llm = LLM(path, dtype="float32", max_model_len=1024, gpu_memory_utilization=0.3, skip_tokenizer_init=True,
                  enforce_eager=eager)
        replayed = []  # the prompt length of each step the prefill graphs ran
        if not eager:
            graphs = llm.llm_engine.executor.runner.prefill_graphs
            run = graphs.run
            graphs.run = lambda inp: replayed.append(len(inp.input_ids)) or run(inp)
        tokens = [llm.generate([{"prompt_token_ids": p}], greedy, use_tqdm=False)[0].outputs[0].token_ids
                  for p in prompts]
        replayed_greedy = list(replayed)
        logprobs_out = llm.generate([{"prompt_token_ids": logprobs_prompt}], with_prompt_logprobs, use_tqdm=False)[0]
        bm = llm.llm_engine.block_manager
        results[eager] = dict(tokens=tokens, replayed_greedy=replayed_greedy, replayed_logprobs=replayed[len(
            replayed_greedy):], logprobs_out=logprobs_out, all_blocks_free=bm.num_free_blocks == bm.num_blocks)
        llm.llm_engine.shutdown()
        del llm
        gc.collect()
        torch.cuda.empty_cache()
    return results


def test_prefill_graphs_give_the_eager_greedy_tokens_at_their_size_edges(runs):
    graphs, eager = runs[False], runs[True]
    for n, got, want in zip(PROMPT_LENS, graphs["tokens"], eager["tokens"]):
        assert got == want, f"prompt of {n} tokens"
    assert graphs["replayed_greedy"] == [n for n in PROMPT_LENS if 1 < n <= 512]
    assert graphs["all_blocks_free"] and eager["all_blocks_free"]


def test_a_request_for_prompt_logprobs_runs_eagerly_with_the_same_logprobs(runs):
    graphs, eager = runs[False], runs[True]
    assert graphs["replayed_logprobs"] == []
    got, want = graphs["logprobs_out"], eager["logprobs_out"]
    assert got.outputs[0].token_ids == want.outputs[0].token_ids
    assert len(got.prompt_logprobs) == len(want.prompt_logprobs) == 40
    for g, w in zip(got.prompt_logprobs[1:], want.prompt_logprobs[1:]):
        assert g.keys() == w.keys()
        for token, lp in w.items():
            assert g[token].logprob == pytest.approx(lp.logprob, abs=1e-4) and g[token].rank == lp.rank
