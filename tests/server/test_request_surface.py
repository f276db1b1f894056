"""Issue 22: vLLM's request surface against real `ember serve` processes. Every field works as in
vLLM or is refused with a 400 naming it; the flags and routes vLLM users script against.

Two servers of one tiny checkpoint: `plain` (no flags) and `surface` (--root-path /proxy
--enable-server-load-tracking --enable-tokenizer-info-endpoint --enable-prompt-tokens-details
--enable-force-include-usage --return-tokens-as-token-ids)."""
from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.server.launcher import ServerProcess, metric, serve_command, wait_for_no_blocks
from tests.tiny_models import build_tiny_checkpoint

MODEL = "tiny"
SURFACE_FLAGS = ["--root-path", "/proxy", "--enable-server-load-tracking", "--enable-tokenizer-info-endpoint",
                 "--enable-prompt-tokens-details", "--enable-force-include-usage", "--return-tokens-as-token-ids"]
GREEDY = {"model": MODEL, "temperature": 0, "ignore_eos": True}
HELLO = [{"role": "user", "content": "Hi there!"}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("surface-llama")), "llama",
                                 max_position_embeddings=2048)


@pytest.fixture(scope="module")
def servers(checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("surface-logs")
    base = [checkpoint, "--served-model-name", MODEL]
    started = {"plain": ServerProcess(serve_command(*base), str(logs / "plain.log")),
               "surface": ServerProcess(serve_command(*base, *SURFACE_FLAGS), str(logs / "surface.log"))}
    yield {name: server for name, server in started.items()}
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def plain(servers) -> ServerProcess:
    return servers["plain"].wait_ready()


@pytest.fixture(scope="module")
def surface(servers) -> ServerProcess:
    return servers["surface"].wait_ready()


def post(server: ServerProcess, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def complete(server, **body) -> dict:
    r = post(server, "/v1/completions", {**GREEDY, "prompt": "Once upon a time", "max_tokens": 8, **body})
    assert r.status_code == 200, r.text
    return r.json()


def chat(server, **body) -> dict:
    r = post(server, "/v1/chat/completions", {**GREEDY, "messages": HELLO, "max_tokens": 8, **body})
    assert r.status_code == 200, r.text
    return r.json()


def events(server, path: str, body: dict) -> list[dict]:
    """A stream's JSON events (the [DONE] line checked and left out)."""
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=120) as r:
        assert r.status_code == 200, r.read()
        lines = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def refused(server, path: str, body: dict, param: str, *words: str) -> None:
    base = {"messages": HELLO} if "chat" in path else {"prompt": "Hi"}
    r = post(server, path, {**GREEDY, **base, "max_tokens": 4, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param, error
    for word in words:
        assert word in error["message"], error


def token_ids_of_stream(chunks: list[dict]) -> dict[int, list[int]]:
    ids: dict[int, list[int]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            ids.setdefault(choice["index"], []).extend(choice.get("token_ids") or [])
    return ids


# ----- bugs -----

def test_an_unknown_post_route_is_a_404(plain):
    r = httpx.post(plain.url + "/v1/no-such-route", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    assert httpx.post(plain.url + "/v1/models").status_code == 405  # a known route, another method


def test_a_client_leaving_a_non_streaming_request_aborts_it_cleanly(plain):
    body = {**GREEDY, "prompt": "Tell me a long story", "max_tokens": 1500}
    finished_before = metric(plain.url, "ember:request_success_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(plain.url + "/v1/completions", json=body, timeout=1.0)
    wait_for_no_blocks(plain.url, finished_before)
    log = plain.log()
    assert "InvalidStateError" not in log and "Unexpected error" not in log
    assert httpx.get(plain.url + "/health").status_code == 200
    assert complete(plain)["choices"][0]["text"]


# ----- logit_bias and allowed_token_ids -----

@pytest.mark.parametrize("stream", [False, True])
def test_logit_bias_and_allowed_token_ids_steer_sampling(plain, stream):
    forced = {"logit_bias": {"1234": 100}, "return_token_ids": True}
    allowed = {"allowed_token_ids": [100, 200, 300], "return_token_ids": True, "temperature": 1.0, "seed": 1}
    for path, call in (("/v1/completions", complete), ("/v1/chat/completions", chat)):
        if stream:
            base = {"prompt": "Once upon a time"} if "chat" not in path else {"messages": HELLO}
            got_forced = token_ids_of_stream(events(plain, path, {**GREEDY, **base, "max_tokens": 8, **forced}))[0]
            got_allowed = token_ids_of_stream(events(plain, path, {**GREEDY, **base, "max_tokens": 8, **allowed}))[0]
        else:
            got_forced = call(plain, **forced)["choices"][0]["token_ids"]
            got_allowed = call(plain, **allowed)["choices"][0]["token_ids"]
        assert got_forced == [1234] * 8
        assert len(got_allowed) == 8 and set(got_allowed) <= {100, 200, 300}


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_bad_token_ids_are_refused_by_name(plain, path):
    refused(plain, path, {"logit_bias": {"abc": 1}}, "logit_bias", "'abc'")
    refused(plain, path, {"logit_bias": {"99999999": 1}}, "logit_bias", "'99999999'")
    refused(plain, path, {"allowed_token_ids": [5, 99999999]}, "allowed_token_ids", "99999999")
    refused(plain, path, {"allowed_token_ids": []}, "allowed_token_ids", "must not be empty")


# ----- beam search -----

def test_beam_search_returns_the_best_distinct_beams(plain, checkpoint):
    from ember import LLM
    from ember.sampling_params import BeamSearchParams

    out = complete(plain, use_beam_search=True, n=2, best_of=3, max_tokens=5, return_token_ids=True)
    texts = [c["text"] for c in out["choices"]]
    assert len(texts) == 2 and texts[0] != texts[1]
    assert out["usage"]["completion_tokens"] == 10
    llm = LLM(checkpoint)
    [want] = llm.beam_search([{"prompt_token_ids": out["choices"][0]["prompt_token_ids"]}],
                             BeamSearchParams(beam_width=3, max_tokens=5, ignore_eos=True))
    prompt_len = len(out["choices"][0]["prompt_token_ids"])
    assert [c["token_ids"] for c in out["choices"]] == [s.tokens[prompt_len:] for s in want.sequences[:2]]
    # Streamed: the same beams, one chunk per choice.
    chunks = events(plain, "/v1/completions", {**GREEDY, "prompt": "Once upon a time", "max_tokens": 5,
                                                "use_beam_search": True, "n": 2, "best_of": 3})
    streamed = {}
    for chunk in chunks:
        for c in chunk["choices"]:
            streamed[c["index"]] = streamed.get(c["index"], "") + c["text"]
    assert [streamed[0], streamed[1]] == texts


def test_beam_search_in_chat(plain):
    beams = chat(plain, use_beam_search=True, n=3, max_tokens=6)["choices"]
    assert len(beams) == 3 and len({b["message"]["content"] for b in beams}) == 3
    one = chat(plain, use_beam_search=True, n=1, max_tokens=6)["choices"][0]["message"]["content"]
    assert one == chat(plain, max_tokens=6)["choices"][0]["message"]["content"]  # width 1: greedy


@pytest.mark.parametrize("field, value", [("top_p", 0.5), ("stop", ["x"]), ("logit_bias", {"5": 1}),
                                          ("logprobs", 2)])
def test_beam_search_refuses_what_it_would_ignore(plain, field, value):
    refused(plain, "/v1/completions", {"use_beam_search": True, "n": 2, field: value}, field)


# ----- token ids in responses -----

def test_return_token_ids_completions(plain):
    out = complete(plain, n=2, temperature=1.0, seed=3, return_token_ids=True)
    prompt_ids = httpx.post(plain.url + "/tokenize", json={"prompt": "Once upon a time"}).json()["tokens"]
    for choice in out["choices"]:
        assert choice["prompt_token_ids"] == prompt_ids and len(choice["token_ids"]) == 8
        text = httpx.post(plain.url + "/detokenize", json={"tokens": choice["token_ids"]}).json()["prompt"]
        assert text == choice["text"]
    chunks = events(plain, "/v1/completions", {**GREEDY, "prompt": "Once upon a time", "max_tokens": 8, "n": 2,
                                               "temperature": 1.0, "seed": 3, "return_token_ids": True})
    assert token_ids_of_stream(chunks) == {c["index"]: c["token_ids"] for c in out["choices"]}
    firsts = [c for chunk in chunks for c in chunk["choices"] if c.get("prompt_token_ids")]
    assert sorted(c["index"] for c in firsts) == [0, 1]  # once per choice
    assert complete(plain)["choices"][0]["token_ids"] is None


def test_return_token_ids_chat(plain):
    out = chat(plain, return_token_ids=True)
    rendered = httpx.post(plain.url + "/tokenize", json={"messages": HELLO}).json()["tokens"]
    assert out["prompt_token_ids"] == rendered and len(out["choices"][0]["token_ids"]) == 8
    chunks = events(plain, "/v1/chat/completions", {**GREEDY, "messages": HELLO, "max_tokens": 8,
                                                    "return_token_ids": True})
    assert chunks[0]["prompt_token_ids"] == rendered
    assert all(c.get("prompt_token_ids") is None for c in chunks[1:])
    assert token_ids_of_stream(chunks)[0] == out["choices"][0]["token_ids"]


def test_tokens_as_token_ids_per_request_and_by_flag(plain, surface):
    def tokens(server, **body):
        choice = complete(server, logprobs=2, return_token_ids=True, **body)["choices"][0]
        return choice["logprobs"]["tokens"], choice["logprobs"]["top_logprobs"], choice["token_ids"]

    texts, _, ids = tokens(plain)
    assert texts != [f"token_id:{t}" for t in ids]
    as_ids, top, ids = tokens(plain, return_tokens_as_token_ids=True)
    assert as_ids == [f"token_id:{t}" for t in ids] and all(k.startswith("token_id:") for t in top for k in t)
    assert tokens(surface)[0] == [f"token_id:{t}" for t in tokens(surface)[2]]  # the flag
    assert tokens(surface, return_tokens_as_token_ids=False)[0] == texts  # a request says otherwise
    content = chat(plain, logprobs=True, top_logprobs=1, return_tokens_as_token_ids=True,
                   return_token_ids=True)["choices"][0]
    assert [t["token"] for t in content["logprobs"]["content"]] == [f"token_id:{t}" for t in content["token_ids"]]


# ----- logprobs -----

def test_prompt_logprobs_in_chat(plain):
    out = chat(plain, prompt_logprobs=2, return_token_ids=True)
    prompt = out["prompt_logprobs"]
    assert len(prompt) == len(out["prompt_token_ids"]) and prompt[0] is None
    for token, entry in zip(out["prompt_token_ids"][1:], prompt[1:]):
        assert str(token) in entry and len(entry) >= 2
    assert "prompt_logprobs" in chat(plain) and chat(plain)["prompt_logprobs"] is None
    refused(plain, "/v1/chat/completions", {"prompt_logprobs": 1, "stream": True}, "prompt_logprobs", "stream")


def test_whole_vocabulary_logprobs_are_refused_by_name(plain):
    refused(plain, "/v1/chat/completions", {"logprobs": True, "top_logprobs": -1}, "top_logprobs", "-1")
    refused(plain, "/v1/completions", {"logprobs": -1}, "logprobs", "-1")
    refused(plain, "/v1/completions", {"prompt_logprobs": -1}, "prompt_logprobs", "-1")


# ----- usage -----

@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_continuous_usage_stats(plain, path):
    base = {"messages": HELLO} if "chat" in path else {"prompt": "Once upon a time"}
    chunks = events(plain, path, {**GREEDY, **base, "max_tokens": 6,
                                  "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    with_choices = [c for c in chunks if c["choices"]]
    assert all(c["usage"] is not None for c in with_choices)
    counts = [c["usage"]["completion_tokens"] for c in with_choices]
    assert counts == sorted(counts) and counts[-1] == 6
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    # Without include_usage, continuous_usage_stats alone adds nothing (vLLM's rule).
    quiet = events(plain, path, {**GREEDY, **base, "max_tokens": 6, "stream_options": {"continuous_usage_stats": True}})
    assert all(c.get("usage") is None for c in quiet)
    refused(plain, path, {"stream_options": {"include_usage": True}}, "stream_options", "stream")


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_force_include_usage(plain, surface, path):
    base = {**GREEDY, "max_tokens": 4, **({"messages": HELLO} if "chat" in path else {"prompt": "Hi"})}
    assert all(c.get("usage") is None for c in events(plain, path, base))
    forced = events(surface, path, base)
    assert forced[-1]["choices"] == [] and forced[-1]["usage"]["completion_tokens"] == 4


def test_cached_tokens_in_prompt_tokens_details(plain, surface):
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 12
    first = complete(surface, prompt=long_prompt, max_tokens=2)["usage"]
    second = complete(surface, prompt=long_prompt, max_tokens=2)["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    assert second["prompt_tokens_details"]["cached_tokens"] >= 64
    assert chat(surface, max_tokens=2)["usage"]["prompt_tokens_details"] is not None
    streamed = events(surface, "/v1/completions", {**GREEDY, "prompt": long_prompt, "max_tokens": 2})
    assert streamed[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] >= 64
    assert complete(plain, prompt=long_prompt)["usage"].get("prompt_tokens_details") is None


# ----- fields known and not served; unknown fields -----

@pytest.mark.parametrize("path, field, value", [
    ("/v1/completions", "bad_words", ["dragon"]), ("/v1/completions", "truncate_prompt_tokens", 4),
    ("/v1/completions", "priority", 3), ("/v1/chat/completions", "cache_salt", "s"),
    ("/v1/chat/completions", "echo", True), ("/v1/chat/completions", "include_reasoning", False),
    ("/v1/chat/completions", "parallel_tool_calls", False)])
def test_known_unserved_fields_are_refused_by_name(plain, path, field, value):
    refused(plain, path, {field: value}, field, "not supported")


def test_defaults_of_unserved_fields_and_unknown_fields_are_accepted(plain):
    assert complete(plain, priority=0, bad_words=[], stream_interval=1, some_future_field={"x": 1})["choices"]
    assert chat(plain, include_reasoning=True, parallel_tool_calls=True, echo=False)["choices"]


# ----- routes -----

def test_root_path(surface):
    assert httpx.get(surface.url + "/proxy/v1/models").json()["data"][0]["id"] == MODEL
    assert httpx.get(surface.url + "/v1/models").status_code == 200  # behind a proxy that strips it
    assert httpx.get(surface.url + "/proxy/health").status_code == 200


def test_invocations_routes_by_body(plain):
    completion = post(plain, "/invocations", {**GREEDY, "prompt": "Once upon a time", "max_tokens": 8}).json()
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == complete(plain)["choices"][0]["text"]
    reply = post(plain, "/invocations", {**GREEDY, "messages": HELLO, "max_tokens": 8}).json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == chat(plain)["choices"][0]["message"]
    streamed = events(plain, "/invocations", {**GREEDY, "messages": HELLO, "max_tokens": 8})
    assert streamed[0]["object"] == "chat.completion.chunk"
    r = post(plain, "/invocations", {"model": MODEL, "input": "hi"})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    assert post(plain, "/invocations", {"prompt": "hi", "max_tokens": "many"}).status_code == 400


def test_load_counts_requests_in_flight(plain, surface):
    assert httpx.get(surface.url + "/load").json() == {"server_load": 0}
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(httpx.get(surface.url + "/load").json()["server_load"])
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        events(surface, "/v1/completions", {**GREEDY, "prompt": "Hi", "max_tokens": 40})
    finally:
        done.set()
        watcher.join()
    assert max(seen) >= 1
    assert httpx.get(surface.url + "/load").json() == {"server_load": 0}
    assert httpx.get(plain.url + "/load").json() == {"server_load": 0}  # not tracking: 0, as vLLM


def test_tokenizer_info(plain, surface):
    info = httpx.get(surface.url + "/tokenizer_info").json()
    assert info["tokenizer_class"].endswith("Fast") or info["tokenizer_class"]
    assert "{%" in info["chat_template"] and "vocab_file" not in info
    assert httpx.get(plain.url + "/tokenizer_info").status_code == 404
