"""Worker processes never outlive their engine: not after shutdown(), not when the engine's
process is killed outright, not when loading fails; a process that ran a tensor-parallel LLM
exits promptly after its last request, without calling shutdown(); and a worker that dies
before joining the process group fails the engine at once instead of leaving it waiting."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ember import LLM
from tests.distributed.processes import generate_then_exit
from tests.processes import alive, wait_gone


def test_shutdown_stops_the_workers(checkpoints):
    llm = LLM(checkpoints["llama"], tensor_parallel_size=2)
    pids = llm.llm_engine.executor.worker_pids
    assert len(pids) == 1 and all(map(alive, pids))
    llm.llm_engine.shutdown()
    assert wait_gone(pids, timeout=1.0) == []
    llm.llm_engine.shutdown()  # twice is harmless


_ENGINE_THEN_SLEEP = """
import sys, threading
from ember import LLM
llm = LLM(sys.argv[1], tensor_parallel_size=2)
print(*llm.llm_engine.executor.worker_pids, flush=True)
threading.Event().wait()  # alive until killed
"""


def test_workers_exit_when_the_engine_process_is_killed(checkpoints, tmp_path):
    # A killed engine cannot remove its rendezvous directory: leave it under tmp_path.
    engine = subprocess.Popen([sys.executable, "-c", _ENGINE_THEN_SLEEP, checkpoints["llama"]],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        pids = [int(p) for p in engine.stdout.readline().split()]
        assert pids and all(map(alive, pids))
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    assert wait_gone(pids, timeout=5.0) == []


_STUCK_WORKER = """
import os, sys, threading
from ember.child_process import exit_with_parent
threading.Thread(target=exit_with_parent, args=(int(sys.argv[1]), os.getppid()), daemon=True).start()
print("watching", flush=True)
threading.Event().wait()  # as a main thread stuck in a collective whose other ranks are gone
"""


def test_a_stuck_worker_exits_as_soon_as_its_engine_hangs_up():
    ours, theirs = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-c", _STUCK_WORKER, str(theirs.fileno())],
                              pass_fds=[theirs.fileno()], stdout=subprocess.PIPE, text=True)
    theirs.close()
    try:
        assert worker.stdout.readline().strip() == "watching"
        ours.close()  # what the kernel does for an engine process killed outright
        hung_up = time.monotonic()
        assert worker.wait(timeout=5) == 1
        assert time.monotonic() - hung_up < 1.0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_process_that_ran_an_llm_exits_within_5_s_of_its_last_request(checkpoints):
    run = generate_then_exit(checkpoints["llama"], {})
    assert run.returncode == 0, run.output
    assert run.workers  # rank 1 ran in a worker process
    assert run.seconds < 5, run.output
    assert run.left == []


def test_a_failed_load_stops_every_worker(checkpoints, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(checkpoints["llama"]):
        if not name.endswith(".safetensors"):
            os.symlink(os.path.join(checkpoints["llama"], name), broken / name)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    children_before = _children()
    with pytest.raises(Exception):
        LLM(str(broken), tensor_parallel_size=2)
    assert wait_gone(sorted(_children() - children_before), timeout=1.0) == []


def test_a_worker_that_dies_before_joining_fails_the_engine_at_once(checkpoints, tmp_path, monkeypatch):
    # Each worker "interpreter" takes its call, then exits without ever joining the process
    # group (as one that crashes on start-up would); torch.distributed alone would wait 30 min.
    crashing = tmp_path / "crashing-python"
    crashing.write_text("#!/bin/sh\nsleep 0.5\nexit 3\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crashing))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="worker rank 1 exited \\(exit code 3\\)"):
        LLM(checkpoints["llama"], tensor_parallel_size=2)
    assert time.monotonic() - start < 20


def _children() -> set[int]:
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}
