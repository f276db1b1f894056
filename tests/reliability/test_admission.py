"""Admission: every out-of-range field is a 400 naming it, before the engine sees the request;
oversized bodies are 413; unknown models are 404 without touching the filesystem. The server
(behind an API key, KV cache smaller than max_model_len) stays healthy throughout."""
import time

import httpx
import pytest

from tests.reliability.conftest import AUTH, GUARDED_KV_TOKENS, GUARDED_MAX_REQUEST_BYTES, MAX_MODEL_LEN, NAME

VOCAB = 49152
COMPLETION = {"model": NAME, "prompt": "Hello there", "max_tokens": 2, "temperature": 0}
CHAT = {"model": NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}

# (path, body changes, param named, words the message must hold)
CASES = [
    ("/v1/completions", {"prompt": [5, VOCAB]}, "prompt", "token ids"),
    ("/v1/completions", {"prompt": [[5, 6], [-1]]}, "prompt", "token ids"),
    ("/v1/completions", {"prompt": [10**30]}, "prompt", "token ids"),
    ("/v1/completions", {"n": 17}, "n", "--max-n"),
    ("/v1/completions", {"n": 2, "best_of": 17}, "best_of", "--max-n"),
    ("/v1/chat/completions", {"n": 10**6}, "n", "at most 16"),
    ("/v1/completions", {"logprobs": 21}, "logprobs", "20"),
    ("/v1/completions", {"prompt_logprobs": 21}, "prompt_logprobs", "20"),
    ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "20"),
    ("/v1/completions", {"max_tokens": MAX_MODEL_LEN}, None, "max_tokens"),
    ("/v1/chat/completions", {"max_tokens": 10**12}, None, "max_tokens"),
    ("/v1/completions", {"stop": [f"s{i}" for i in range(65)]}, "stop", "64"),
    ("/v1/chat/completions", {"stop": "x" * 1001}, "stop", "1000"),
    ("/v1/completions", {"stop_token_ids": [VOCAB]}, "stop_token_ids", "stop_token_ids"),
    ("/v1/completions", {"seed": 2**70}, "seed", "64 bits"),
    ("/v1/completions", {"top_k": 2**70}, "top_k", "top_k"),
    ("/v1/completions", {"prompt": [[7]] * 1025}, "prompt", "--max-queued-requests"),
    # Fits max_model_len (640) but never the whole KV cache (256 tokens): refused at once.
    ("/v1/completions", {"max_tokens": GUARDED_KV_TOKENS}, "max_tokens", "could never run"),
    ("/v1/completions", {"prompt": list(range(10, 10 + GUARDED_KV_TOKENS + 4))}, "prompt", "KV cache"),
]


def post(server, path: str, **kwargs) -> httpx.Response:
    return httpx.post(server.url + path, headers={**AUTH, **kwargs.pop("headers", {})}, timeout=30, **kwargs)


@pytest.mark.parametrize("path,changes,param,needle", CASES)
def test_out_of_range_fields_are_400_naming_the_field(guarded_server, path, changes, param, needle):
    base = COMPLETION if path == "/v1/completions" else CHAT
    start = time.monotonic()
    r = post(guarded_server, path, json={**base, **changes})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and needle in error["message"], error
    assert time.monotonic() - start < 5  # refused at once, never left waiting


@pytest.mark.parametrize("body", ['{"prompt": "x", "temperature": NaN}', '{"prompt": "x", "top_p": Infinity}',
                                  '{"prompt": "x", "temperature": 1e400}'])
def test_non_finite_numbers_are_refused(guarded_server, body):
    r = post(guarded_server, "/v1/completions", content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text


def test_within_the_limits_is_served(guarded_server):
    r = post(guarded_server, "/v1/completions", json={**COMPLETION, "n": 16, "max_tokens": 1, "logprobs": 20,
                                                      "stop": ["x" * 1000] + [f"s{i}" for i in range(63)]})
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 16


def test_oversized_bodies_get_413(guarded_server, report):
    big = {**COMPLETION, "prompt": "a" * GUARDED_MAX_REQUEST_BYTES}
    r = post(guarded_server, "/v1/completions", json=big)
    assert r.status_code == 413 and "--max-request-bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        yield b'{"prompt": "'
        for _ in range(GUARDED_MAX_REQUEST_BYTES // 1024 + 1):
            yield b"a" * 1024
        yield b'"}'

    r = post(guarded_server, "/v1/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert post(guarded_server, "/v1/completions", json=COMPLETION).status_code == 200
    report("oversized_bodies", sent=2, status_413=2)


def test_unknown_models_are_404_and_never_loaded(guarded_server, checkpoint):
    # The name of a real checkpoint directory on this machine is still just an unknown name.
    for model in ("gpt-17", checkpoint, "../../../../etc/passwd", "Qwen/Qwen2.5-7B-Instruct"):
        r = post(guarded_server, "/v1/chat/completions", json={**CHAT, "model": model})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model", r.text
    assert "Loaded " + checkpoint not in guarded_server.log().split("Engine ready")[-1]


def test_request_chat_template_needs_the_flag(storm_server):
    r = httpx.post(storm_server.url + "/v1/chat/completions", json={**CHAT, "chat_template": "{{ 'x' }}"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "chat_template"
    assert "--trust-request-chat-template" in r.json()["error"]["message"]


def test_server_healthy_after_all_refusals(guarded_server):
    assert httpx.get(guarded_server.url + "/health").status_code == 200
    assert post(guarded_server, "/v1/chat/completions", json=CHAT).status_code == 200
