"""What the lifetime tests look at besides tests/processes.py: which processes are
tensor-parallel workers, and an offline LLM run in a process of its own, timed from its last
request to its exit."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from tests.processes import descendants, wait_gone

WORKER_MODULE = "ember.executor.mp_worker"


def is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return WORKER_MODULE.encode() in f.read()
    except OSError:
        return False


# The LLM is left to the interpreter's exit, as a script that never calls shutdown() leaves it.
_GENERATE_THEN_EXIT = """
import json, sys
from ember import LLM, SamplingParams
llm = LLM(sys.argv[1], tensor_parallel_size=2, **json.loads(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
out = llm.generate([{"prompt_token_ids": [5, 6, 7, 8]}], SamplingParams(max_tokens=8, ignore_eos=True),
                   use_tqdm=False)
assert len(out[0].outputs[0].token_ids) == 8
print("done", flush=True)
"""


@dataclass
class ExitAfterLastRequest:
    seconds: float        # from the last request's output to the process's exit
    returncode: int
    workers: list[int]    # the tensor-parallel worker processes it had
    left: list[int]       # its descendants still alive a moment after its exit
    output: str


def generate_then_exit(model: str, engine_args: dict, load_timeout: float = 240.0) -> ExitAfterLastRequest:
    proc = subprocess.Popen([sys.executable, "-c", _GENERATE_THEN_EXIT, model, json.dumps(engine_args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _Output(proc)
    try:
        output.wait_for("ready", load_timeout)
        family = descendants(proc.pid)
        workers = [p for p in family if is_worker(p)]
        proc.stdin.write("\n")
        proc.stdin.flush()
        output.wait_for("done", load_timeout)
        last_request = time.monotonic()
        try:
            returncode = proc.wait(30)
        except subprocess.TimeoutExpired:
            returncode = None
        seconds = time.monotonic() - last_request
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return ExitAfterLastRequest(seconds, returncode, workers, wait_gone(family, 1.0), output.text())


class _Output:
    """A process's output lines, read on a thread: waiting for one can time out, not hang."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout:.0f} s:\n{self.text()[-5000:]}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {marker!r}:\n{self.text()[-5000:]}")
            self.seen.append(line)
            if line.strip() == marker:
                return

    def text(self) -> str:
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)
