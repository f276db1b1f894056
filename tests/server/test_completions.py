"""/v1/completions through the official openai client."""
import httpx
import openai
import pytest

from tests.server.conftest import TINY_NAME

GREEDY = {"temperature": 0}
NO_EOS = {"ignore_eos": True}


def test_completion_shape_and_usage(client):
    out = client.completions.create(model=TINY_NAME, prompt="Hello, my name is", max_tokens=5, temperature=0,
                                    extra_body=NO_EOS)
    assert out.object == "text_completion" and out.id.startswith("cmpl-") and out.model == TINY_NAME
    [choice] = out.choices
    assert choice.index == 0 and choice.finish_reason == "length" and choice.text
    assert out.usage.completion_tokens == 5 and out.usage.total_tokens == out.usage.prompt_tokens + 5


def test_prompt_forms_and_n(client, tiny_server):
    ids = httpx.post(tiny_server.url + "/tokenize", json={"prompt": "Hello, my name is"}).json()["tokens"]
    by_text = client.completions.create(model=TINY_NAME, prompt="Hello, my name is", max_tokens=4, **GREEDY,
                                        extra_body=NO_EOS).choices[0].text
    by_ids = client.completions.create(model=TINY_NAME, prompt=ids, max_tokens=4, **GREEDY,
                                       extra_body=NO_EOS).choices[0].text
    assert by_ids == by_text
    many = client.completions.create(model=TINY_NAME, prompt=["Hello, my name is", "The sky"], n=2,
                                     max_tokens=4, **GREEDY, extra_body=NO_EOS)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == many.choices[1].text == by_text
    assert many.usage.completion_tokens == 16
    lists = client.completions.create(model=TINY_NAME, prompt=[ids, ids[:2]], max_tokens=4, **GREEDY,
                                      extra_body=NO_EOS)
    assert lists.choices[0].text == by_text and len(lists.choices) == 2


def test_seed_makes_sampling_reproducible(client):
    def sample(seed):
        return client.completions.create(model=TINY_NAME, prompt="Once", max_tokens=12, temperature=1.0,
                                         seed=seed, extra_body=NO_EOS).choices[0].text

    assert sample(1234) == sample(1234)
    assert len({sample(s) for s in (1, 2, 3)}) > 1


def test_stop_strings_and_stop_token_ids(client):
    full = client.completions.create(model=TINY_NAME, prompt="The", max_tokens=12, **GREEDY,
                                     extra_body=NO_EOS).choices[0]
    stop = full.text[4:8]
    cut = client.completions.create(model=TINY_NAME, prompt="The", max_tokens=12, stop=[stop], **GREEDY,
                                    extra_body=NO_EOS).choices[0]
    assert cut.finish_reason == "stop" and cut.stop_reason == stop
    assert cut.text == full.text[:full.text.index(stop)]


def test_logprobs_in_the_completions_shape(client):
    out = client.completions.create(model=TINY_NAME, prompt="Hello", max_tokens=4, logprobs=3, **GREEDY,
                                    extra_body=NO_EOS).choices[0]
    lp = out.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == out.text
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 3 <= len(top) <= 4 and value <= 0
        assert top[token] == pytest.approx(value) and value == pytest.approx(max(top.values()))  # greedy


def test_echo_with_logprobs_scores_the_prompt(client):
    prompt = "The quick brown fox"
    out = client.completions.create(model=TINY_NAME, prompt=prompt, max_tokens=2, echo=True, logprobs=1,
                                    **GREEDY, extra_body=NO_EOS)
    choice = out.choices[0]
    assert choice.text.startswith(prompt)
    n_prompt = out.usage.prompt_tokens
    assert len(choice.logprobs.tokens) == n_prompt + 2
    assert choice.logprobs.token_logprobs[0] is None and choice.logprobs.top_logprobs[0] is None
    assert all(v is not None for v in choice.logprobs.token_logprobs[1:])
    scored = client.completions.create(model=TINY_NAME, prompt=prompt, max_tokens=0, echo=True, logprobs=0)
    assert scored.choices[0].text == prompt and scored.usage.completion_tokens == 0
    assert scored.choices[0].logprobs.token_logprobs == pytest.approx(choice.logprobs.token_logprobs[:n_prompt])


def test_streaming_equals_non_streaming(client):
    kwargs = dict(model=TINY_NAME, prompt="Hello, my name is", max_tokens=8, **GREEDY, extra_body=NO_EOS)
    whole = client.completions.create(**kwargs).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8


def test_suffix_is_refused_clearly(client):
    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model=TINY_NAME, prompt="def f(", suffix="return 1", max_tokens=4)
