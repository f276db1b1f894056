"""The `ember` command line: generate, chat (remote and local), startup errors, subcommands."""
import argparse
import subprocess
import sys

import httpx
import pytest

from ember.entrypoints import cli
from ember.entrypoints.openai.api_server import create_app
from tests.server.conftest import TINY_NAME
from tests.server.launcher import REPO_ROOT

SAMPLING = ["--temperature", "0", "--max-tokens", "6", "--ignore-eos"]


def ember(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ember.entrypoints.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def server_reply(url: str, path: str, body: dict) -> str:
    body = {"model": TINY_NAME, "temperature": 0, "max_tokens": 6, "ignore_eos": True, **body}
    choice = httpx.post(url + path, json=body, timeout=60).json()["choices"][0]
    return choice["text"] if "text" in choice else choice["message"]["content"]


def test_generate_streams_what_the_server_returns(tiny_server, tiny_checkpoint):
    result = ember("generate", "--model", tiny_checkpoint, "Hello, my name is", *SAMPLING)
    assert result.returncode == 0, result.stderr
    assert result.stdout == server_reply(tiny_server.url, "/v1/completions", {"prompt": "Hello, my name is"}) + "\n"


def test_chat_against_a_server_and_locally(tiny_server, tiny_checkpoint):
    turns = "Hi there!\n\nexit\n"
    expected = server_reply(tiny_server.url, "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "Hi there!"}]}) + "\n"
    remote = ember("chat", "--url", tiny_server.url + "/v1", *SAMPLING, stdin=turns)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == expected
    local = ember("chat", "--model", tiny_checkpoint, *SAMPLING, stdin=turns)
    assert local.returncode == 0, local.stderr
    assert local.stdout == expected


def serve_args(*argv: str) -> argparse.Namespace:
    args = cli.build_parser().parse_args(["serve", *argv])
    args.model = args.model_tag or args.model
    return args


@pytest.mark.parametrize("flags,needle", [(["--quantization", "awq"], "quantization"),
                                          (["--kv-cache-dtype", "int3"], "kv_cache_dtype"),
                                          (["-pp", "2"], "pipeline"),
                                          (["--enable-auto-tool-choice"], "--tool-call-parser"),
                                          (["--tool-call-parser", "mistral"], "--tool-call-parser"),
                                          (["--enable-reasoning-parser"], "--reasoning-parser"),
                                          (["--reasoning-parser", "granite"], "--reasoning-parser"),
                                          (["--chat-template", "missing/template.jinja"], "does not exist")])
def test_unsupported_or_bad_flags_fail_before_loading(tiny_checkpoint, flags, needle):
    with pytest.raises(ValueError, match=needle):
        create_app(serve_args(tiny_checkpoint, *flags))


def test_startup_error_exits_with_a_clear_message(tiny_checkpoint):
    result = ember("serve", tiny_checkpoint, "--quantization", "gptq", timeout=60)
    assert result.returncode != 0 and "has no quantization_config" in result.stderr


def test_subcommands_and_optional_bench():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"serve", "generate", "chat"} <= set(commands)
    assert ("bench" in commands) == cli._exists("ember.entrypoints.bench.cli")
    args = parser.parse_args(["serve", "some/model", "--served-model-name", "a", "b", "--rope-scaling",
                              '{"type": "yarn", "factor": 4.0}', "--no-enable-prefix-caching"])
    assert (args.model_tag, args.served_model_name, args.rope_scaling["factor"], args.enable_prefix_caching,
            args.port, args.gpu_memory_utilization) == ("some/model", ["a", "b"], 4.0, False, 8000, 0.9)
