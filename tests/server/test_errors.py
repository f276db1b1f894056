"""Error statuses and OpenAI-shaped bodies; an error never harms the server or other requests."""
import httpx
import openai
import pytest

from tests.server.conftest import API_KEY, KEYED_KV_TOKENS, TINY_MAX_MODEL_LEN, TINY_NAME

CHAT = {"model": TINY_NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def post(server, path, **kwargs):
    return httpx.post(server.url + path, timeout=30, **kwargs)


def assert_error(response, status, *needles, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["type"] and error["param"] == param
    for needle in needles:
        assert needle in error["message"]
    return error


def test_prompt_plus_max_tokens_beyond_max_model_len(tiny_server):
    limit = TINY_MAX_MODEL_LEN
    r = post(tiny_server, "/v1/completions", json={"model": TINY_NAME, "prompt": "Hello", "max_tokens": limit})
    error = assert_error(r, 400, str(limit), str(limit + 1))  # the limit, and prompt + max_tokens
    assert error["type"] == "BadRequestError"
    long_prompt = list(range(10, limit + 10))
    assert_error(post(tiny_server, "/v1/completions", json={"model": TINY_NAME, "prompt": long_prompt}), 400,
                 str(limit))


@pytest.mark.parametrize("field,value", [("temperature", -1), ("top_p", 2.0), ("top_k", -5), ("min_p", 3),
                                         ("presence_penalty", 9), ("repetition_penalty", 0), ("n", 0),
                                         ("min_tokens", 5)])
def test_invalid_sampling_values_name_the_field(tiny_server, field, value):
    assert_error(post(tiny_server, "/v1/chat/completions", json={**CHAT, field: value}), 400, field)


@pytest.mark.parametrize("body,param", [({**CHAT, "temperature": "hot"}, "temperature"),
                                        ({**CHAT, "messages": "hello"}, "messages"),
                                        ({**CHAT, "stop": 5}, "stop.str"),
                                        ({"model": TINY_NAME}, "messages"),
                                        ({**CHAT, "logprobs": True, "top_logprobs": 50}, "top_logprobs")])
def test_wrong_types_are_400_not_422(tiny_server, body, param):
    assert_error(post(tiny_server, "/v1/chat/completions", json=body), 400, "Invalid request", param=param)


def test_malformed_json(tiny_server):
    r = post(tiny_server, "/v1/chat/completions", content=b'{"model": "tiny", "messages": [',
             headers={"Content-Type": "application/json"})
    assert_error(r, 400, "Malformed JSON")


def test_body_without_json_content_type(tiny_server):
    r = post(tiny_server, "/v1/completions", content=b'{"prompt": "Hi"}')
    assert_error(r, 400, "Content-Type: application/json")


@pytest.mark.parametrize("prompt", [[10**9], [10**30], [-1], [[5, 6], [49152]]])
def test_token_ids_outside_the_vocabulary(tiny_server, prompt):
    r = post(tiny_server, "/v1/completions", json={"model": TINY_NAME, "prompt": prompt, "max_tokens": 2})
    assert_error(r, 400, "token ids must be in [0, 49152)", param="prompt")


def test_unknown_model_and_route(tiny_server):
    assert_error(post(tiny_server, "/v1/chat/completions", json={**CHAT, "model": "gpt-17"}), 404, "gpt-17",
                 param="model")
    assert_error(httpx.get(tiny_server.url + "/v1/nothing"), 404)


def test_openai_client_surfaces_the_message(client):
    with pytest.raises(openai.BadRequestError, match=f"maximum context length is {TINY_MAX_MODEL_LEN}") as info:
        client.completions.create(model=TINY_NAME, prompt="Hi", max_tokens=TINY_MAX_MODEL_LEN)
    assert info.value.body["type"] == "BadRequestError"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])


def test_errors_leave_the_server_serving(client, tiny_server):
    for _ in range(3):
        post(tiny_server, "/v1/chat/completions", content=b"{nope")
        post(tiny_server, "/v1/completions", json={"model": TINY_NAME, "prompt": [10**9]})
    assert httpx.get(tiny_server.url + "/health").status_code == 200
    out = client.completions.create(model=TINY_NAME, prompt="Hi", max_tokens=2, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 2


def test_api_key(keyed_server):
    url = keyed_server.url
    assert_error(httpx.get(url + "/v1/models"), 401)
    assert_error(httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(httpx.post(url + "/v1/chat/completions", json=CHAT), 401)
    assert_error(httpx.post(url + "/tokenize", json={"prompt": "hi"}), 401)
    good = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(url + "/v1/models", headers=good).status_code == 200
    for public in ("/health", "/version", "/metrics"):
        assert httpx.get(url + public).status_code == 200
    # Odd spellings of a protected path are never let through without the key.
    for odd in ("//v1/models", "/health/../v1/models", "/v1/./models", "/%761/models"):
        assert httpx.get(url + odd).status_code == 401, odd
    client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    assert client.chat.completions.create(**CHAT).choices[0].message.content is not None
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0).models.list()


def test_default_max_tokens_fits_a_kv_cache_smaller_than_max_model_len(keyed_server):
    client = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key=API_KEY, max_retries=0)
    out = client.completions.create(model=TINY_NAME, prompt="Once upon a time", extra_body={"ignore_eos": True})
    assert out.usage.total_tokens == KEYED_KV_TOKENS < TINY_MAX_MODEL_LEN
