"""The reliability suite's servers: real `ember serve` processes on loopback ports, each with the
flags its tests need, all started at once when the session begins so that their start-ups
overlap (tests/server/launcher.py's machinery). Servers that a test ends (engine fault,
SIGTERM, SIGINT) serve that test alone.

Each test records its figures with `report(...)`; they are printed at the end of the run (and
written as JSON to $EMBER_RELIABILITY_REPORT when set): docs/reliability.md quotes them."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.processes import cmdline, descendants
from tests.reliability.hostile import pickle_checkpoint, remote_code_checkpoint
from tests.server.launcher import ServerProcess, hooked_serve_command, serve_command
from tests.tiny_models import build_tiny_checkpoint

NAME = "tiny"
API_KEY = "sk-ember-reliability-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_MODEL_LEN = 640
# The guarded server's KV cache: 16 blocks of 16 tokens, less than max_model_len.
GUARDED_KV_TOKENS = 256
GUARDED_MAX_REQUEST_BYTES = 65536
FUZZ_MAX_MODEL_LEN = 64
FAULT_STEP = 40
SIGINT_SHUTDOWN_TIMEOUT_S = 1.0

_FIGURES: dict[str, dict] = {}


@pytest.fixture(scope="session")
def report():
    """report(test_name, **figures): kept for the summary at the end of the run."""
    def record(name: str, **figures) -> None:
        _FIGURES.setdefault(name, {}).update(figures)
    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, figures in _FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get("EMBER_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_FIGURES, f, indent=2)


class Server(ServerProcess):
    """A ServerProcess that may speak HTTPS (`verify`: the CA file) and lists its children."""

    def __init__(self, command, log_path, env=None, tls: tuple[str, str] | None = None):
        extra = ["--ssl-keyfile", tls[0], "--ssl-certfile", tls[1]] if tls else []
        super().__init__([*command, *extra], log_path, env)
        if tls:
            self.scheme = "https"
            self.verify = tls[1]

    def children(self) -> list[int]:
        """Pids of this server's descendant processes (the engine core, the chat template
        sandbox, the executor's workers under the core)."""
        return descendants(self.proc.pid)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.log()[-3000:]}") from None


def workers_of(server: "Server") -> dict[str, list[int]]:
    """The server's descendants by kind: the engine core, the chat template sandbox and
    tensor-parallel ranks."""
    kids = server.children()
    return {"core": [p for p in kids if "ember.engine.core_process" in cmdline(p)],
            "sandbox": [p for p in kids if "ember_template_sandbox" in cmdline(p)],
            "rank": [p for p in kids if "ember.executor.mp_worker" in cmdline(p)]}


def self_signed_certificate(directory: str) -> tuple[str, str]:
    """(key file, certificate file) for 127.0.0.1, made with openssl (part of the machine)."""
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("reliability-llama")), "llama",
                                 max_position_embeddings=MAX_MODEL_LEN)


@pytest.fixture(scope="session")
def long_checkpoint(tmp_path_factory) -> str:
    """The same weights with a 4,096-token context: requests that outlast a short shutdown timeout."""
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("reliability-long")), "llama",
                                 max_position_embeddings=4096)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    return self_signed_certificate(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def hostile(checkpoint, tmp_path_factory) -> dict:
    """Checkpoints that try to run code, and the marker file each would leave."""
    root = tmp_path_factory.mktemp("hostile")
    markers = {"remote_code": str(root / "remote_code_ran"), "pickle": str(root / "pickle_ran")}
    return {"markers": markers,
            "remote_code": remote_code_checkpoint(checkpoint, str(root / "remote_code"), markers["remote_code"]),
            "pickle": pickle_checkpoint(checkpoint, str(root / "pickle"), markers["pickle"])}


@pytest.fixture(scope="session")
def servers(checkpoint, long_checkpoint, certificate, hostile, tmp_path_factory):
    logs = tmp_path_factory.mktemp("reliability-logs")

    def start(name: str, *flags: str, model: str = checkpoint, env: dict | None = None, tls=None) -> Server:
        return Server(serve_command(model, "--served-model-name", NAME, *flags), str(logs / f"{name}.log"), env, tls)

    started = {
        # Admission, security, hostile templates: behind a key, trusting request templates,
        # a small body limit and a KV cache smaller than max_model_len.
        # Request logging on: the key must be redacted from the logged prompts too.
        "guarded": start("guarded", "--api-key", API_KEY, "--trust-request-chat-template", "--enable-log-requests",
                         "--max-request-bytes", str(GUARDED_MAX_REQUEST_BYTES),
                         "--num-gpu-blocks-override", str(GUARDED_KV_TOKENS // 16)),
        # Schemathesis: short contexts and small n keep every generated request cheap.
        "fuzz": start("fuzz", "--api-key", API_KEY, "--max-model-len", str(FUZZ_MAX_MODEL_LEN), "--max-n", "4",
                      "--max-queued-requests", "64", "--trust-request-chat-template", "--disable-log-requests"),
        "storm": start("storm", "--disable-log-requests"),
        "overload": start("overload", "--max-num-seqs", "2", "--max-queued-requests", "4", "--disable-log-requests"),
        # Tensor parallel over 2 CPU ranks: a worker process that must not outlive the server.
        "fault": Server(hooked_serve_command(["--fail-at-step", str(FAULT_STEP)], checkpoint, "--served-model-name",
                                             NAME, "-tp", "2"), str(logs / "fault.log")),
        "sigterm": start("sigterm", "-tp", "2", "--disable-log-requests"),
        "sigkill": start("sigkill", "-tp", "2", "--disable-log-requests"),
        "sigint": start("sigint", "--shutdown-timeout", str(SIGINT_SHUTDOWN_TIMEOUT_S), "--disable-log-requests",
                        model=long_checkpoint),
    }
    started["tls"] = start("tls", "--api-key", API_KEY, tls=certificate)
    started["remote_code"] = start("remote_code", "--trust-remote-code", model=hostile["remote_code"])
    started["pickle"] = start("pickle", model=hostile["pickle"])
    yield started
    for server in started.values():
        server.stop()


def _server(name: str):
    @pytest.fixture(scope="session")
    def fixture(servers) -> Server:
        return servers[name].wait_ready()
    return fixture


guarded_server = _server("guarded")
fuzz_server = _server("fuzz")
storm_server = _server("storm")
overload_server = _server("overload")
fault_server = _server("fault")
sigterm_server = _server("sigterm")
sigint_server = _server("sigint")
sigkill_server = _server("sigkill")
tls_server = _server("tls")
remote_code_server = _server("remote_code")
