"""`ember serve` with no model: the embedded SmolLM2-135M-Instruct."""
import httpx
import openai

from tests.server.conftest import DEFAULT_NAME


def test_serves_the_embedded_model_by_name(default_server):
    [card] = httpx.get(default_server.url + "/v1/models").json()["data"]
    assert card["id"] == DEFAULT_NAME and card["max_model_len"] == 8192


def test_answers_the_capital_of_france(default_server):
    client = openai.OpenAI(base_url=default_server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)
    out = client.chat.completions.create(model=DEFAULT_NAME, temperature=0, max_tokens=32,
                                         messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in out.choices[0].message.content
