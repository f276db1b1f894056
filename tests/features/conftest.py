"""Servers for the feature tests (tools, reasoning, structured output), all started at once so
their start-ups overlap:
- `tools`: the preference model (preference_model.py) with --enable-auto-tool-choice
  --tool-call-parser hermes and the test chat template;
- `reasoning`: the same with the seed's `--enable-reasoning-parser --reasoning-parser deepseek_r1`;
- `qwen3`: the same with vLLM 0.8's `--enable-reasoning --reasoning-parser qwen3`;
- `smol`: `ember serve` with no model (the embedded SmolLM2-135M-Instruct).
The tiny servers answer prompts holding a trigger of scripts.py with the scripted text."""
from __future__ import annotations

import json
import os

import pytest

from tests.features.preference_model import build_preference_checkpoint
from tests.features.scripts import SCRIPTS
from tests.server.launcher import ServerProcess, hooked_serve_command, serve_command

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "chat_template.jinja")
MODEL = "tiny"
SMOL = "SmolLM2-135M-Instruct"
HERMES = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


@pytest.fixture(scope="session")
def preference_checkpoint(tmp_path_factory) -> str:
    return build_preference_checkpoint(str(tmp_path_factory.mktemp("preference-llama")))


@pytest.fixture(scope="session")
def feature_servers(preference_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("feature-servers")
    scripts = work / "scripts.json"
    scripts.write_text(json.dumps(SCRIPTS))
    scripted = ["--scripted-outputs", str(scripts)]
    tiny = [preference_checkpoint, "--served-model-name", MODEL, "--chat-template", TEMPLATE,
            "--max-model-len", "1024", "--disable-log-requests"]
    started = {
        "tools": ServerProcess(hooked_serve_command(scripted, *tiny, *HERMES), str(work / "tools.log")),
        "reasoning": ServerProcess(hooked_serve_command(scripted, *tiny, *HERMES, "--enable-reasoning-parser",
                                                        "--reasoning-parser", "deepseek_r1"),
                                   str(work / "reasoning.log")),
        "qwen3": ServerProcess(hooked_serve_command(scripted, *tiny, "--enable-reasoning", "--reasoning-parser",
                                                    "qwen3"), str(work / "qwen3.log")),
        "smol": ServerProcess(serve_command(*HERMES, "--max-model-len", "2048", "--disable-log-requests"),
                              str(work / "smol.log")),
    }
    yield started
    for server in started.values():
        server.stop()


def _client(server: ServerProcess):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def tools_server(feature_servers) -> ServerProcess:
    return feature_servers["tools"].wait_ready()


@pytest.fixture(scope="session")
def tools_client(tools_server):
    return _client(tools_server)


@pytest.fixture(scope="session")
def reasoning_server(feature_servers) -> ServerProcess:
    return feature_servers["reasoning"].wait_ready()


@pytest.fixture(scope="session")
def reasoning_client(reasoning_server):
    return _client(reasoning_server)


@pytest.fixture(scope="session")
def qwen3_client(feature_servers):
    return _client(feature_servers["qwen3"].wait_ready())


@pytest.fixture(scope="session")
def smol_client(feature_servers):
    return _client(feature_servers["smol"].wait_ready())
