"""The server-sent-event framing, read raw as curl would see it."""
import json

import httpx

from tests.server.conftest import TINY_NAME


def events(url: str, path: str, body: dict) -> list:
    """Every `data:` payload in order, parsed (the literal "[DONE]" kept as a string)."""
    with httpx.stream("POST", url + path, json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    blocks = [b for b in raw.split("\n\n") if b]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks)
    return [b[6:] if b == "data: [DONE]" else json.loads(b[6:]) for b in blocks]


def test_chat_stream_framing(tiny_server):
    body = {"model": TINY_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5,
            "temperature": 0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    *chunks, done = events(tiny_server.url, "/v1/chat/completions", body)
    assert done == "[DONE]"
    first, *deltas, finish, usage = chunks
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} and c["choices"][0]["finish_reason"] is None
               for c in deltas)
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_without_usage_and_with_n(tiny_server):
    body = {"model": TINY_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "n": 2,
            "temperature": 1.0, "ignore_eos": True, "stream": True}
    *chunks, done = events(tiny_server.url, "/v1/chat/completions", body)
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [{"role": "assistant", "content": ""}] * 2
    assert [c["choices"][0]["index"] for c in chunks[:2]] == [0, 1]
    finishes = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finishes) == [0, 1]
    assert all(c.get("usage") is None for c in chunks)


def test_completion_stream_framing(tiny_server):
    body = {"model": TINY_NAME, "prompt": "Hello", "max_tokens": 4, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}, "logprobs": 1}
    *chunks, usage, done = events(tiny_server.url, "/v1/completions", body)
    assert done == "[DONE]" and usage["usage"]["completion_tokens"] == 4
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    tokens = [t for c in chunks for t in c["choices"][0]["logprobs"]["tokens"]]
    assert len(tokens) == 4 and "".join(tokens) == "".join(c["choices"][0]["text"] for c in chunks)


def test_a_stream_refused_before_it_starts_is_a_plain_400(tiny_server):
    body = {"model": TINY_NAME, "prompt": "Hi", "max_tokens": 100_000, "stream": True}
    response = httpx.post(tiny_server.url + "/v1/completions", json=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == 400
