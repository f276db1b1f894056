"""Sampling behaviour: seeds, n, stops, min_tokens, penalties and logprobs, on a tiny model."""

import pytest
import torch

from ember import LLM, SamplingParams
from tests.tiny_models import smollm2_tokenizer

PROMPTS = [[5, 17, 300, 4000], [9, 8, 7, 6, 5, 4, 3, 222, 1111], [42] * 20, [100, 200]]


@pytest.fixture(scope="module")
def llm(tiny_llama):
    return LLM(tiny_llama, max_num_seqs=8)


def _ids(prompts):
    return [{"prompt_token_ids": p} for p in prompts]


def _texts(outs):
    return [[o.token_ids for o in r.outputs] for r in outs]


def test_seeded_sampling_is_independent_of_the_batch(llm):
    seeded = SamplingParams(temperature=1.0, seed=1234, max_tokens=10, ignore_eos=True)
    alone = llm.generate(_ids(PROMPTS[:1]), seeded, use_tqdm=False)[0].outputs[0].token_ids
    noise = SamplingParams(temperature=0.9, top_p=0.9, max_tokens=14, ignore_eos=True)
    mixed = llm.generate(_ids(PROMPTS), [seeded, noise, noise, noise], use_tqdm=False)
    assert mixed[0].outputs[0].token_ids == alone


def test_unseeded_sampling_varies(llm):
    params = SamplingParams(temperature=1.5, max_tokens=10, ignore_eos=True)
    a = llm.generate(_ids(PROMPTS[:1]), params, use_tqdm=False)[0].outputs[0].token_ids
    b = llm.generate(_ids(PROMPTS[:1]), params, use_tqdm=False)[0].outputs[0].token_ids
    assert a != b


def test_n_samples_differ_and_are_each_reproducible(llm):
    params = SamplingParams(n=3, temperature=1.0, seed=7, max_tokens=8, ignore_eos=True)
    out = llm.generate(_ids(PROMPTS[:1]), params, use_tqdm=False)[0]
    assert [o.index for o in out.outputs] == [0, 1, 2]
    samples = [o.token_ids for o in out.outputs]
    assert len({tuple(s) for s in samples}) == 3
    again = llm.generate(_ids(PROMPTS[:1]), params, use_tqdm=False)[0]
    assert [o.token_ids for o in again.outputs] == samples


def test_stop_token_ids_end_the_output(llm):
    free = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=10, ignore_eos=True),
                        use_tqdm=False)[0].outputs[0]
    stop_id = free.token_ids[4]
    out = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=10, ignore_eos=True,
                                                         stop_token_ids=[stop_id]), use_tqdm=False)[0].outputs[0]
    first = free.token_ids.index(stop_id)
    assert out.token_ids == free.token_ids[:first + 1]
    assert out.finish_reason == "stop" and out.stop_reason == stop_id


def test_stop_strings_are_cut_from_the_text(llm):
    free = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=12, ignore_eos=True),
                        use_tqdm=False)[0].outputs[0]
    stop = free.text[len(free.text) // 2:len(free.text) // 2 + 3]
    assert stop.strip()
    cut = free.text.index(stop)
    out = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=12, ignore_eos=True,
                                                         stop=[stop]), use_tqdm=False)[0].outputs[0]
    assert out.text == free.text[:cut]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    kept = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=12, ignore_eos=True,
                                                          stop=[stop], include_stop_str_in_output=True),
                        use_tqdm=False)[0].outputs[0]
    assert kept.text == free.text[:cut + len(stop)]


def test_min_tokens_holds_back_eos(llm):
    eos = llm.llm_engine.eos_token_ids
    assert eos
    params = SamplingParams(temperature=0, max_tokens=6, min_tokens=6, stop_token_ids=[], logprobs=0)
    out = llm.generate(_ids(PROMPTS[:2]), params, use_tqdm=False)
    for r in out:
        assert len(r.outputs[0].token_ids) == 6
        assert not set(r.outputs[0].token_ids) & set(eos)
        assert r.outputs[0].finish_reason == "length"


def test_logprobs_match_transformers_log_softmax(llm, tiny_llama):
    from transformers import AutoModelForCausalLM

    params = SamplingParams(temperature=0, max_tokens=5, ignore_eos=True, logprobs=3, prompt_logprobs=2)
    out = llm.generate(_ids(PROMPTS[1:2]), params, use_tqdm=False)[0]
    completion = out.outputs[0]
    hf = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    ids = torch.tensor([PROMPTS[1] + completion.token_ids])
    with torch.no_grad():
        logprobs = hf(ids).logits[0].log_softmax(-1)
    n = len(PROMPTS[1])
    total = 0.0
    for i, (token, entry) in enumerate(zip(completion.token_ids, completion.logprobs)):
        row = logprobs[n - 1 + i]
        assert entry[token].logprob == pytest.approx(row[token].item(), abs=1e-4)
        assert entry[token].rank == 1  # greedy picks the top token
        top3 = row.topk(3).indices.tolist()
        assert set(top3) <= set(entry)
        total += entry[token].logprob
    assert completion.cumulative_logprob == pytest.approx(total, abs=1e-4)
    assert out.prompt_logprobs[0] is None
    for pos, entry in enumerate(out.prompt_logprobs[1:], start=1):
        token = PROMPTS[1][pos]
        assert entry[token].logprob == pytest.approx(logprobs[pos - 1, token].item(), abs=1e-4)
    assert len(out.prompt_logprobs) == n


def test_repetition_penalty_matches_transformers(llm, tiny_llama):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    prompt = PROMPTS[2]
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=10, repetition_penalty=1.5,
                          eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True, repetition_penalty=1.5)
    assert llm.generate(_ids([prompt]), params, use_tqdm=False)[0].outputs[0].token_ids == ref


def test_top_k_one_is_greedy(llm):
    greedy = llm.generate(_ids(PROMPTS), SamplingParams(temperature=0, max_tokens=8, ignore_eos=True),
                          use_tqdm=False)
    topk = llm.generate(_ids(PROMPTS), SamplingParams(temperature=1.0, top_k=1, max_tokens=8, ignore_eos=True),
                        use_tqdm=False)
    tiny_p = llm.generate(_ids(PROMPTS), SamplingParams(temperature=1.0, top_p=1e-6, max_tokens=8, ignore_eos=True),
                          use_tqdm=False)
    assert _texts(greedy) == _texts(topk) == _texts(tiny_p)


def test_text_matches_tokenizer_decode(llm):
    out = llm.generate(_ids(PROMPTS), SamplingParams(temperature=0.8, seed=3, max_tokens=16, ignore_eos=True),
                       use_tqdm=False)
    tok = smollm2_tokenizer()
    for r in out:
        assert r.outputs[0].text == tok.decode(r.outputs[0].token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -2), ("min_p", 1.5),
    ("max_tokens", 0), ("max_tokens", -5), ("n", 0), ("presence_penalty", 3.0),
    ("frequency_penalty", -2.5), ("repetition_penalty", 0.0), ("min_tokens", -1), ("logprobs", -1),
    ("stop", [""]), ("stop_token_ids", [-3]),
])
def test_invalid_sampling_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})


def test_min_tokens_above_max_tokens_is_rejected():
    with pytest.raises(ValueError, match="min_tokens"):
        SamplingParams(min_tokens=10, max_tokens=5)


def test_prompt_longer_than_max_model_len_is_rejected_and_others_still_run(llm):
    too_long = [5] * 600
    with pytest.raises(ValueError, match="maximum context length"):
        llm.generate(_ids([too_long]), SamplingParams(max_tokens=4), use_tqdm=False)
    ok = llm.generate(_ids(PROMPTS[:1]), SamplingParams(temperature=0, max_tokens=3, ignore_eos=True), use_tqdm=False)
    assert len(ok[0].outputs[0].token_ids) == 3
    bm = llm.llm_engine.block_manager
    assert bm.num_free_blocks == bm.num_blocks


def test_max_tokens_beyond_the_context_stops_at_max_model_len(llm):
    """Seed 004 asks max_tokens=32768 offline: generation runs to the end of the context."""
    limit = llm.llm_engine.config.max_model_len
    out = llm.generate(_ids([[5] * (limit - 12)]), SamplingParams(max_tokens=32768, ignore_eos=True),
                       use_tqdm=False)[0].outputs[0]
    assert len(out.token_ids) == 12 and out.finish_reason == "length"


def test_unknown_engine_argument_is_rejected(tiny_llama):
    with pytest.raises(TypeError, match="no_such_flag"):
        LLM(tiny_llama, no_such_flag=1)
