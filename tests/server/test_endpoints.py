"""/v1/models, /health, /version, /tokenize, /detokenize, /metrics."""
import httpx

import ember
from tests.server.conftest import TINY_ALIAS, TINY_MAX_MODEL_LEN, TINY_NAME


def test_models_lists_every_served_name_with_vllm_fields(tiny_server):
    body = httpx.get(tiny_server.url + "/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == [TINY_NAME, TINY_ALIAS]
    card = body["data"][0]
    assert card["object"] == "model" and card["owned_by"] == "ember" and card["root"] == TINY_NAME
    assert card["parent"] is None and card["max_model_len"] == TINY_MAX_MODEL_LEN and isinstance(card["created"], int)
    assert card["permission"][0]["object"] == "model_permission" and card["permission"][0]["allow_sampling"]


def test_health_and_version(tiny_server):
    assert httpx.get(tiny_server.url + "/health").status_code == 200
    assert httpx.get(tiny_server.url + "/version").json() == {"version": ember.__version__}


def test_tokenize_and_detokenize(tiny_server):
    url = tiny_server.url
    body = httpx.post(url + "/tokenize", json={"model": TINY_NAME, "prompt": "Hello world",
                                              "return_token_strs": True}).json()
    assert body["count"] == len(body["tokens"]) == len(body["token_strs"])
    assert body["max_model_len"] == TINY_MAX_MODEL_LEN
    assert httpx.post(url + "/detokenize", json={"tokens": body["tokens"]}).json() == {"prompt": "Hello world"}
    chat = httpx.post(url + "/tokenize", json={"messages": [{"role": "user", "content": "Hello world"}]}).json()
    assert chat["count"] > body["count"]
    assert httpx.post(url + "/tokenize", json={}).status_code == 400
    assert httpx.post(url + "/detokenize", json={"tokens": [-1]}).status_code == 400


def test_metrics_in_prometheus_format(tiny_server, client):
    client.completions.create(model=TINY_NAME, prompt="Hi", max_tokens=3, extra_body={"ignore_eos": True})
    text = httpx.get(tiny_server.url + "/metrics").text
    for name in ("ember:num_requests_running", "ember:num_requests_waiting", "ember:kv_cache_usage_perc",
                 "ember:kv_cache_used_blocks", "ember:prompt_tokens_total", "ember:generation_tokens_total",
                 'ember:request_success_total{finished_reason="length"', "ember:time_to_first_token_seconds_bucket",
                 "ember:time_per_output_token_seconds_bucket", "ember:e2e_request_latency_seconds_count"):
        assert name in text, name
