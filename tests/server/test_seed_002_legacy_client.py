"""Seed 002: Qwen v1 served with the seed's ChatML template file, called through the legacy
`openai<1.0` client (`openai.api_base`, `openai.ChatCompletion.create`) streaming and not, the
seed's code run as written with only the port changed. `make test` installs that client beside
the venv (`.venv/legacy-openai`), since the modern client the other tests use shares its name."""
import os
import subprocess
import sys

import pytest

from tests.models.qwen_v1_checkpoint import build_qwen_v1_checkpoint
from tests.server.launcher import REPO_ROOT, ServerProcess

LEGACY_OPENAI = os.path.join(sys.prefix, "legacy-openai")

SEED_002_STANDALONE = '''
import openai
openai.api_base = "http://localhost:8000/v1"
openai.api_key = "none"

# create a request activating streaming response
for chunk in openai.ChatCompletion.create(
    model="Qwen",
    messages=[
        {"role": "user", "content": "你好"}
    ],
    stream=True, 
    stop_token_ids=[151645]
):
    if hasattr(chunk.choices[0].delta, "content"):
        print(chunk.choices[0].delta.content, end="", flush=True)

# create a request not activating streaming response
response = openai.ChatCompletion.create(
    model="Qwen",
    messages=[
        {"role": "user", "content": "你好"}
    ],
    stream=False,
    stop_token_ids=[151645]
)
print(response.choices[0].message.content)
'''

# Greedy, so the streamed text must equal the non-streamed one: the client parsed every chunk.
STREAM_EQUALS_WHOLE = '''
import openai
openai.api_base = "http://localhost:8000/v1"
openai.api_key = "none"
messages = [{"role": "user", "content": "你好"}]
streamed = "".join(getattr(c.choices[0].delta, "content", "") for c in openai.ChatCompletion.create(
    model="Qwen", messages=messages, stream=True, temperature=0, max_tokens=24, stop=[]))
whole = openai.ChatCompletion.create(model="Qwen", messages=messages, stream=False, temperature=0,
                                     max_tokens=24, stop=[])
assert whole.choices[0].message.role == "assistant" and whole.usage.completion_tokens > 0, whole
assert streamed == whole.choices[0].message.content, (streamed, whole)
print("equal:", len(streamed), "characters")
'''


@pytest.fixture(scope="module")
def qwen_v1_server(tmp_path_factory):
    assert os.path.isdir(LEGACY_OPENAI), f"the legacy openai client is not in {LEGACY_OPENAI}: run `make test`"
    model = build_qwen_v1_checkpoint(str(tmp_path_factory.mktemp("qwen_v1")))
    log = str(tmp_path_factory.mktemp("logs") / "qwen_v1.log")
    server = ServerProcess(["-m", "ember.entrypoints.openai.api_server", "--model", model, "--trust-remote-code",
                            "--chat-template", os.path.join(REPO_ROOT, "examples", "template_chatml.jinja"),
                            "--served-model-name", "Qwen"], log)
    yield server.wait_ready()
    server.stop()


def run_legacy(code: str, url: str) -> str:
    result = subprocess.run([sys.executable, "-c", code.replace("http://localhost:8000", url)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": LEGACY_OPENAI})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_seed_runs_as_written(qwen_v1_server):
    printed = run_legacy(SEED_002_STANDALONE, qwen_v1_server.url)
    assert printed.strip()


def test_streamed_text_equals_the_whole_answer(qwen_v1_server):
    assert run_legacy(STREAM_EQUALS_WHOLE, qwen_v1_server.url).startswith("equal:")
