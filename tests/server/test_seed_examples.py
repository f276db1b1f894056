"""The seed documents' server examples (000 and 003), run as written with only the model name
(and the port) changed."""
import contextlib
import io
import json
import shutil
import subprocess

import pytest

from tests.server.conftest import TINY_NAME

SEED_000_CURL = """curl http://localhost:8000/v1/chat/completions -H "Content-Type: application/json" -d '{
  "model": "Qwen/Qwen2.5-7B-Instruct",
  "messages": [
    {"role": "system", "content": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
    {"role": "user", "content": "Tell me something about large language models."}
  ],
  "temperature": 0.7,
  "top_p": 0.8,
  "repetition_penalty": 1.05,
  "max_tokens": 512
}'"""

SEED_000_PYTHON = '''
from openai import OpenAI
# Set OpenAI's API key and API base to use vLLM's API server.
openai_api_key = "EMPTY"
openai_api_base = "http://localhost:8000/v1"

client = OpenAI(
    api_key=openai_api_key,
    base_url=openai_api_base,
)

chat_response = client.chat.completions.create(
    model="Qwen/Qwen2.5-7B-Instruct",
    messages=[
        {"role": "system", "content": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
        {"role": "user", "content": "Tell me something about large language models."},
    ],
    temperature=0.7,
    top_p=0.8,
    max_tokens=512,
    extra_body={
        "repetition_penalty": 1.05,
    },
)
print("Chat response:", chat_response)
'''

SEED_003_CURL_MODELS = "curl http://localhost:8000/v1/models"

SEED_003_CURL_COMPLETIONS = """curl http://localhost:8000/v1/completions \\
-H "Content-Type: application/json" \\
-d '{
"model": "Qwen2-7B-Instruct",
"prompt": "你好",
"max_tokens": 50,
"temperature": 0
}'"""

SEED_003_PYTHON_CHAT = '''
# vllm_openai_completions.py
from openai import OpenAI
client = OpenAI(
base_url="http://localhost:8000/v1",
api_key="sk-xxx", # Fill in casually, just to pass the interface parameter verification
)

completion = client.chat.completions.create(
model="Qwen2-7B-Instruct",
messages=[
{"role": "user", "content": "Hello"}
]
)

print(completion.choices[0].message)
'''

SEED_003_CURL_CHAT = """curl http://localhost:8000/v1/chat/completions \\
-H "Content-Type: application/json" \\
-d '{
"model": "Qwen2-7B-Instruct",
"messages": [
{"role": "system", "content": "You are a helpful assistant."},
{"role": "user", "content": "你好"}
]
}'"""


def adapt(snippet: str, url: str) -> str:
    for name in ("Qwen/Qwen2.5-7B-Instruct", "Qwen2-7B-Instruct"):
        snippet = snippet.replace(f'"{name}"', f'"{TINY_NAME}"')
    return snippet.replace("http://localhost:8000", url)


def run_curl(snippet: str, url: str) -> dict:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(["bash", "-c", adapt(snippet, url) + " --silent --show-error"], capture_output=True,
                            text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def run_python(snippet: str, url: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(adapt(snippet, url), "<seed>", "exec"), {})
    return out.getvalue()


def test_seed_000_curl_chat(tiny_server):
    body = run_curl(SEED_000_CURL, tiny_server.url)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert 0 < body["usage"]["completion_tokens"] <= 512


def test_seed_000_python_client(tiny_server):
    printed = run_python(SEED_000_PYTHON, tiny_server.url)
    assert printed.startswith("Chat response: ChatCompletion(id='chatcmpl-")
    assert "ChatCompletionMessage(content=" in printed and "usage=CompletionUsage(" in printed


def test_seed_003_models_and_completions(tiny_server):
    models = run_curl(SEED_003_CURL_MODELS, tiny_server.url)
    card = models["data"][0]
    assert set(card) >= {"id", "object", "created", "owned_by", "root", "parent", "permission", "max_model_len"}
    body = run_curl(SEED_003_CURL_COMPLETIONS, tiny_server.url)
    choice = body["choices"][0]
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert set(choice) >= {"index", "text", "logprobs", "finish_reason", "stop_reason"}
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_seed_003_python_client_and_curl_chat(tiny_server):
    printed = run_python(SEED_003_PYTHON_CHAT, tiny_server.url)
    assert printed.startswith("ChatCompletionMessage(content=") and "role='assistant'" in printed
    body = run_curl(SEED_003_CURL_CHAT, tiny_server.url)
    assert body["choices"][0]["finish_reason"] in ("stop", "length") and body["usage"]["prompt_tokens"] > 0
