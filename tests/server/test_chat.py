"""/v1/chat/completions through the official openai client."""
import httpx
import openai
import pytest

from tests.server.conftest import TINY_ALIAS, TINY_NAME

HELLO = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi there!"}]
GREEDY = {"temperature": 0}
NO_EOS = {"ignore_eos": True}


def chat(client, messages=HELLO, **kwargs):
    kwargs = {"model": TINY_NAME, "max_tokens": 6, **GREEDY, "extra_body": NO_EOS, **kwargs}
    return client.chat.completions.create(messages=messages, **kwargs)


def test_chat_shape_and_usage(client):
    out = chat(client)
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-")
    [choice] = out.choices
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason == "length"
    assert out.usage.completion_tokens == 6 and out.usage.prompt_tokens > 6


def test_every_served_name_and_all_roles(client):
    messages = [*HELLO, {"role": "assistant", "content": "Hello!"},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"},
                {"role": "user", "content": [{"type": "text", "text": "What"}, {"type": "text", "text": "now?"}]}]
    assert chat(client, messages, model=TINY_ALIAS).model == TINY_ALIAS
    assert chat(client, messages).choices[0].message.content


def test_n_choices_and_seeds(client):
    out = chat(client, n=3, temperature=1.0, seed=7)
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert len({c.message.content for c in out.choices}) > 1
    again = chat(client, n=3, temperature=1.0, seed=7)
    assert [c.message.content for c in again.choices] == [c.message.content for c in out.choices]
    assert out.usage.completion_tokens == 18


def test_max_completion_tokens_and_stop(client):
    full = chat(client, max_tokens=None, max_completion_tokens=10).choices[0]
    assert full.finish_reason == "length" and full.message.content
    stop = full.message.content[3:7]
    cut = chat(client, max_tokens=10, stop=stop).choices[0]
    text = full.message.content
    assert cut.finish_reason == "stop" and cut.message.content == text[:text.index(stop)]


def test_logprobs_in_the_chat_shape(client):
    out = chat(client, logprobs=True, top_logprobs=2).choices[0]
    content = out.logprobs.content
    assert len(content) == 6 and "".join(t.token for t in content) == out.message.content
    for token in content:
        assert len(token.top_logprobs) == 2 and token.top_logprobs[0].token == token.token  # greedy: rank 1
        assert token.bytes == list(token.token.encode())
    assert chat(client).choices[0].logprobs is None


def test_streaming_equals_non_streaming(client):
    whole = chat(client, max_tokens=8).choices[0].message.content
    chunks = list(chat(client, max_tokens=8, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole
    assert chunks[-1].choices[0].finish_reason == "length"


def test_template_controls(client, tiny_server):
    def rendered(**body):
        return httpx.post(tiny_server.url + "/tokenize", json={"messages": HELLO, **body}).json()["tokens"]

    with_prompt, without = rendered(), rendered(add_generation_prompt=False)
    assert len(with_prompt) > len(without)
    # continue_final_message: the reply extends the assistant's unfinished message.
    prefix = [*HELLO, {"role": "assistant", "content": "Sure, the answer is"}]
    out = chat(client, prefix, extra_body={**NO_EOS, "continue_final_message": True, "add_generation_prompt": False,
                                           "chat_template_kwargs": {"enable_thinking": False}})
    assert out.choices[0].message.content


def test_request_chat_template_needs_the_server_flag(client):
    with pytest.raises(openai.BadRequestError, match="trust-request-chat-template"):
        chat(client, extra_body={"chat_template": "{{ messages }}"})


def test_unsupported_features_are_refused_not_ignored(client):
    # This server has no --enable-auto-tool-choice (tests/features covers tools and structured output).
    with pytest.raises(openai.BadRequestError, match="--enable-auto-tool-choice"):
        chat(client, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}], tool_choice="auto")
    with pytest.raises(openai.BadRequestError, match="image"):
        chat(client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
