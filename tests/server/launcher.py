"""Real `ember serve` processes for the server tests. Each binds port 0 itself (no port handed
over, so no race between servers starting at once) and the port is read back from uvicorn's
"Uvicorn running on ..." log line."""
from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time

import httpx

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LISTENING = re.compile(r"Uvicorn running on https?://\S+:(\d+)")


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the test process dies without cleaning up.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class ServerProcess:
    scheme = "http"
    verify: str | bool = True  # httpx's `verify`: a CA file for a server speaking HTTPS

    def __init__(self, command: list[str], log_path: str, env: dict | None = None,
                 python: str = sys.executable, cwd: str = REPO_ROOT):
        self._port: int | None = None
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [python, *command, "--host", "127.0.0.1", "--port", "0"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    @property
    def port(self) -> int:
        """The port the server bound; waits for it to start listening."""
        if self._port is None:
            self._wait(180.0, lambda: self._port is not None)
        return self._port

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> "ServerProcess":
        self._wait(timeout, self._healthy)
        return self

    def _healthy(self) -> bool:
        if self._port is None:
            return False
        try:
            return httpx.get(self.url + "/health", timeout=1.0, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, timeout: float, done) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-5000:]}")
            if self._port is None:
                found = _LISTENING.search(self.log())
                self._port = int(found.group(1)) if found else None
            if done():
                return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()[-5000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def serve_command(*args: str) -> list[str]:
    return ["-m", "ember.entrypoints.cli", "serve", *args]


def hooked_serve_command(hooks: list[str], *args: str) -> list[str]:
    """`ember serve ARGS` with test hooks installed (tests/hooked_server.py), e.g.
    ["--fail-at-step", "3"] or ["--scripted-outputs", path]."""
    return ["-m", "tests.hooked_server", *hooks, "--", *args]


def metric(url: str, name: str) -> float:
    """One sample of /metrics, summed over its labels."""
    text = httpx.get(url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def wait_for_no_blocks(url: str, finished_before: float, timeout: float = 10.0) -> None:
    """Waits until the server holds no KV block and runs no request, then checks that none
    finished meanwhile: what a request whose client left must come to. Each poll is two
    requests to /metrics, which paces the loop."""
    deadline = time.monotonic() + timeout
    while metric(url, "ember:kv_cache_used_blocks") != 0 or metric(url, "ember:num_requests_running") != 0:
        assert time.monotonic() < deadline, "KV blocks still allocated after the client left"
    # Aborted, not run to its end: no request finished meanwhile.
    assert metric(url, "ember:request_success_total") == finished_before
