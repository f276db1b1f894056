"""allowed_token_ids and logit_bias (vLLM's SamplingParams fields), applied in the sampler, and
the offline checks that name a bad field instead of failing deep in the engine."""

import pytest

from ember import LLM, SamplingParams

PROMPT = {"prompt_token_ids": [5, 17, 300, 4000, 12]}


@pytest.fixture(scope="module")
def llm(tiny_llama):
    return LLM(tiny_llama, max_num_seqs=8)


def _tokens(llm, **params):
    out = llm.generate([PROMPT], SamplingParams(max_tokens=12, ignore_eos=True, **params), use_tqdm=False)
    return out[0].outputs[0]


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_allowed_token_ids_restrict_every_sampled_token(llm, temperature):
    free = _tokens(llm, temperature=0.0).token_ids
    allowed = [7, 99, 1000, 2048]
    assert not set(free) <= set(allowed)
    out = _tokens(llm, temperature=temperature, seed=3, allowed_token_ids=allowed)
    assert set(out.token_ids) <= set(allowed)


def test_logit_bias_forces_and_bans_tokens(llm):
    free = _tokens(llm, temperature=0.0).token_ids
    assert _tokens(llm, temperature=0.0, logit_bias={321: 100.0}).token_ids == [321] * 12
    banned = {t: -100.0 for t in set(free)}
    assert not set(_tokens(llm, temperature=0.0, logit_bias=banned).token_ids) & set(free)
    # String keys of ints, as OpenAI's JSON has them.
    assert _tokens(llm, temperature=0.0, logit_bias={"321": 100}).token_ids == [321] * 12


def test_constraints_stay_with_their_row_in_a_batch(llm):
    plain = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    forced = plain.clone(logit_bias={42: 100.0})
    only = plain.clone(allowed_token_ids=[8, 9])
    outs = llm.generate([PROMPT] * 3, [plain, forced, only], use_tqdm=False)
    alone = llm.generate([PROMPT], plain, use_tqdm=False)[0].outputs[0].token_ids
    assert outs[0].outputs[0].token_ids == alone
    assert outs[1].outputs[0].token_ids == [42] * 6
    assert set(outs[2].outputs[0].token_ids) <= {8, 9}


def test_logprobs_stay_those_of_the_model(llm):
    """Like vLLM, logprobs report the model's distribution, before any bias."""
    free = _tokens(llm, temperature=0.0, logprobs=1)
    forced = _tokens(llm, temperature=0.0, logprobs=1, logit_bias={free.token_ids[0]: 0.0, 321: 100.0})
    assert forced.token_ids[0] == 321 and forced.logprobs[0][321].rank > 1


@pytest.mark.parametrize("field, value, message", [
    ("allowed_token_ids", [3, 10**6], "allowed_token_ids: token id 1000000 is out of the vocabulary"),
    ("logit_bias", {10**6: 1.0}, "logit_bias: key '1000000' is not a token id"),
])
def test_ids_outside_the_vocabulary_are_refused_by_name(llm, field, value, message):
    with pytest.raises(ValueError, match=message):
        llm.generate([PROMPT], SamplingParams(**{field: value}), use_tqdm=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"allowed_token_ids": []}, "allowed_token_ids must not be empty"),
    ({"allowed_token_ids": [1, -2]}, "allowed_token_ids must hold non-negative integers, got -2"),
    ({"logit_bias": {"a": 1.0}}, "logit_bias keys must be token ids, got 'a'"),
    ({"logit_bias": {3: float("nan")}}, r"logit_bias\[3\] must be a finite number"),
])
def test_malformed_constraints_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("prompt", [{"prompt_token_ids": ["a", "b"]}, {"prompt_token_ids": [1, 2.5]},
                                    {"prompt_token_ids": "1 2 3"}, [[1, "x"]]])
def test_prompt_token_ids_that_are_not_ints_are_a_value_error(llm, prompt):
    prompts = prompt if isinstance(prompt, list) else [prompt]
    with pytest.raises(ValueError, match="prompt_token_ids must"):
        llm.generate(prompts, SamplingParams(max_tokens=2), use_tqdm=False)
