"""Tensor parallelism driven from the engine process. Rank 0, the driver, runs here: it alone
samples and returns tokens. Ranks 1.. run elsewhere and receive every call the driver makes, in
the same order, so that all ranks meet in the same collectives. Subclasses start those ranks
and carry the calls to them: multiproc (processes on this host) and ray_executor (Ray actors)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from ember.config import EngineConfig
from ember.executor.worker import RankSpec, Worker
from ember.worker.pending_step import PendingStep
from ember.worker.step_input import StepInput, StepOutput


class DistributedExecutor:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.driver: Worker | None = None
        try:
            init_method, driver_device = self._start_workers()
            self.driver = Worker(config, RankSpec(0, config.tensor_parallel_size, init_method, driver_device),
                                 watch=self._raise_if_failed)
            self._replies()  # every worker has loaded its shard
        except BaseException:
            self.shutdown()
            raise

    # ----- what a backend provides -----

    def _start_workers(self) -> tuple[str, str]:
        """Start ranks 1.. (each builds its Worker, then replies); returns the rendezvous
        address and the driver's device."""
        raise NotImplementedError

    def _submit(self, method: str, args: tuple, reply: bool) -> None:
        """Call `method(*args)` on every worker's Worker, without waiting."""
        raise NotImplementedError

    def _replies(self) -> list[Any]:
        """The results of the calls submitted with reply=True, in rank order; raises a
        worker's error."""
        raise NotImplementedError

    def _raise_if_failed(self) -> None:
        """Raise, without waiting, if a worker reported an error or is gone."""
        raise NotImplementedError

    def _stop_workers(self) -> None:
        """Stop ranks 1.. and leave the process group. Also runs when the executor is
        garbage-collected or the interpreter exits (a weakref.finalize), so it holds no self."""
        raise NotImplementedError

    # ----- the executor interface LLMEngine uses -----

    def determine_num_blocks(self) -> int:
        """Each rank sizes the cache from its own memory; all must hold the same blocks."""
        return min(self._on_all_ranks("determine_num_blocks"))

    def initialize_cache(self, num_blocks: int) -> None:
        self._on_all_ranks("initialize_cache", num_blocks)

    def launch(self, step: StepInput) -> PendingStep:
        self._submit("execute", (step,), reply=False)
        with self._worker_failures_explained():
            return self.driver.runner.launch(step)

    def collect(self, pending: PendingStep) -> StepOutput:
        self._raise_if_failed()
        with self._worker_failures_explained():
            return self.driver.runner.collect(pending)

    def shutdown(self) -> None:
        """Stop the other ranks and leave the process group; safe to call more than once."""
        self._stop_workers()
        if self.driver is not None:
            self.driver.runner.release()
            self.driver = None

    def _on_all_ranks(self, method: str, *args) -> list[Any]:
        """Run `method` on every rank at once (they meet in its collectives): driver first."""
        self._submit(method, args, reply=True)
        with self._worker_failures_explained():
            mine = getattr(self.driver, method)(*args)
        return [mine] + self._replies()

    @contextmanager
    def _worker_failures_explained(self):
        """When a worker fails, the driver's next collective breaks too; the worker's own
        error says why, so it is the one raised."""
        try:
            yield
        except Exception:
            self._raise_if_failed()
            raise
