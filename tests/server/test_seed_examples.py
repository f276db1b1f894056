"""The seed documents' server examples (000 and 003), run as written with only the model name
(and the port) changed."""
from tests.seed_snippets import SEED_CLIENT_PREAMBLE, run_curl, run_python
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

SEED_000_PYTHON = SEED_CLIENT_PREAMBLE + '''
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


CHANGES = {f'"{name}"': f'"{TINY_NAME}"' for name in ("Qwen/Qwen2.5-7B-Instruct", "Qwen2-7B-Instruct")}


def curl(snippet: str, url: str) -> dict:
    return run_curl(snippet, url, CHANGES)


def python(snippet: str, url: str) -> str:
    return run_python(snippet, url, CHANGES)[0]


def test_seed_000_curl_chat(tiny_server):
    body = curl(SEED_000_CURL, tiny_server.url)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert 0 < body["usage"]["completion_tokens"] <= 512


def test_seed_000_python_client(tiny_server):
    printed = python(SEED_000_PYTHON, tiny_server.url)
    assert printed.startswith("Chat response: ChatCompletion(id='chatcmpl-")
    assert "ChatCompletionMessage(content=" in printed and "usage=CompletionUsage(" in printed


def test_seed_003_models_and_completions(tiny_server):
    models = curl(SEED_003_CURL_MODELS, tiny_server.url)
    card = models["data"][0]
    assert set(card) >= {"id", "object", "created", "owned_by", "root", "parent", "permission", "max_model_len"}
    body = curl(SEED_003_CURL_COMPLETIONS, tiny_server.url)
    choice = body["choices"][0]
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert set(choice) >= {"index", "text", "logprobs", "finish_reason", "stop_reason"}
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_seed_003_python_client_and_curl_chat(tiny_server):
    printed = python(SEED_003_PYTHON_CHAT, tiny_server.url)
    assert printed.startswith("ChatCompletionMessage(content=") and "role='assistant'" in printed
    body = curl(SEED_003_CURL_CHAT, tiny_server.url)
    assert body["choices"][0]["finish_reason"] in ("stop", "length") and body["usage"]["prompt_tokens"] > 0
