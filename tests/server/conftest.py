"""Session servers for the server tests, all started at once so their start-ups overlap:
`tiny` (a tiny random Llama served by `ember serve MODEL`), `keyed` (the same checkpoint behind
an API key and with a KV cache smaller than max_model_len, started through
`python -m ember.entrypoints.openai.api_server`), and `default`
(`ember serve` with no model: the embedded SmolLM2-135M-Instruct)."""
from __future__ import annotations

import pytest

from tests.server.launcher import ServerProcess, serve_command
from tests.tiny_models import build_tiny_checkpoint

TINY_NAME = "tiny"
# Room for the seeds' max_tokens 512 after a chat prompt.
TINY_MAX_MODEL_LEN = 640
# The keyed server's KV cache is smaller than max_model_len (in tokens).
KEYED_KV_TOKENS = 32 * 16
TINY_ALIAS = "tiny-alias"
API_KEY = "sk-ember-test"
DEFAULT_NAME = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("server-llama")), "llama",
                                 max_position_embeddings=TINY_MAX_MODEL_LEN)


@pytest.fixture(scope="session")
def servers(tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("server-logs")
    started = {
        "default": ServerProcess(serve_command(), str(logs / "default.log")),
        "tiny": ServerProcess(serve_command(tiny_checkpoint, "--served-model-name", TINY_NAME, TINY_ALIAS),
                              str(logs / "tiny.log")),
        "keyed": ServerProcess(["-m", "ember.entrypoints.openai.api_server", "--model", tiny_checkpoint,
                                "--served-model-name", TINY_NAME, "--api-key", API_KEY,
                                "--num-gpu-blocks-override", str(KEYED_KV_TOKENS // 16),
                                "--disable-log-requests"], str(logs / "keyed.log")),
    }
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def tiny_server(servers) -> ServerProcess:
    return servers["tiny"].wait_ready()


@pytest.fixture(scope="session")
def keyed_server(servers) -> ServerProcess:
    return servers["keyed"].wait_ready()


@pytest.fixture(scope="session")
def default_server(servers) -> ServerProcess:
    return servers["default"].wait_ready()


@pytest.fixture(scope="session")
def client(tiny_server):
    from openai import OpenAI

    return OpenAI(base_url=tiny_server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=60)
