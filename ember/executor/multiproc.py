"""The mp backend: ranks 1.. as worker processes on this host, one per GPU (or per CPU rank).

Each worker is a fresh interpreter (`python -m ember.executor.mp_worker`): no fork of the
engine process (CUDA forbids it) and no re-import of the user's script (multiprocessing's
spawn would run an unguarded `LLM(...)` at its top level again). It is driven through a Unix
socket pair that it inherits: nothing listens on the network, and nothing but the engine can
reach the channel that carries the (pickled) calls. The ranks' process group meets through a
file store in a private temporary directory.

Workers end with the engine: shutdown() asks them to exit, leaves the process group at the
same time (every rank aborts its own communicators, so none waits for another: on NCCL a
rank that waited for an exited one would wait for ever), and kills the workers still there
STOP_TIMEOUT_S later; at interpreter exit or when the executor is garbage-collected the same
happens; and a worker whose engine process dies (even by SIGKILL) sees its socket hang up or
its parent change and exits by itself."""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import tempfile
import time
import weakref
from typing import Any

from ember.child_process import start_child
from ember.config import EngineConfig
from ember.distributed.parallel_state import destroy_tensor_parallel
from ember.executor.distributed import DistributedExecutor
from ember.executor.worker import RankSpec

# A worker asked to stop leaves at once: one still there after this is stuck, and killed.
STOP_TIMEOUT_S = 3.0


class WorkerProcess:
    """One worker process and the socket it is driven through."""

    def __init__(self, spec: RankSpec, config: EngineConfig):
        self.rank = spec.rank
        self.proc, self.conn = start_child("ember.executor.mp_worker")
        self.conn.send((spec, config))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, payload: bytes) -> None:
        self.conn.send_bytes(payload)

    def reply(self) -> Any:
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"Tensor-parallel worker rank {self.rank} exited "
                               f"(exit code {self.proc.wait()}).") from None
        if status == "error":
            raise RuntimeError(f"Tensor-parallel worker rank {self.rank} failed:\n{value}")
        return value

    def raise_if_failed(self) -> None:
        if self.conn.poll():  # a worker speaks unasked only to report its failure (or closes)
            self.reply()
        if self.proc.poll() is not None:
            raise RuntimeError(f"Tensor-parallel worker rank {self.rank} exited (exit code {self.proc.returncode}).")

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(("shutdown", (), False))
        except OSError:
            pass  # already gone

    def wait_or_kill(self, deadline: float) -> None:
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()


def _stop_processes(workers: list[WorkerProcess], tmpdir: str) -> None:
    for w in workers:
        w.ask_to_stop()
    destroy_tensor_parallel()  # while they leave too: no rank waits for another
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for w in workers:
        w.wait_or_kill(deadline)
    shutil.rmtree(tmpdir, ignore_errors=True)


class MultiprocExecutor(DistributedExecutor):
    def __init__(self, config: EngineConfig):
        self._workers: list[WorkerProcess] = []
        self._tmpdir = tempfile.mkdtemp(prefix="ember-tp-")  # mode 0700: this user's alone
        self._stop = weakref.finalize(self, _stop_processes, self._workers, self._tmpdir)
        super().__init__(config)

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def _start_workers(self) -> tuple[str, str]:
        tp = self.config.tensor_parallel_size
        cuda = self.config.device.startswith("cuda")
        init_method = "file://" + os.path.join(self._tmpdir, "rendezvous")
        for rank in range(1, tp):
            self._workers.append(WorkerProcess(RankSpec(rank, tp, init_method, f"cuda:{rank}" if cuda else "cpu"),
                                               self.config))
        return init_method, "cuda:0" if cuda else "cpu"

    def _submit(self, method: str, args: tuple, reply: bool) -> None:
        payload = pickle.dumps((method, args, reply), protocol=pickle.HIGHEST_PROTOCOL)
        for w in self._workers:
            w.send(payload)

    def _replies(self) -> list[Any]:
        return [w.reply() for w in self._workers]

    def _raise_if_failed(self) -> None:
        for w in self._workers:
            w.raise_if_failed()

    def _stop_workers(self) -> None:
        self._stop()
