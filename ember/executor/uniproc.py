"""Runs every step in this process on one device."""
from __future__ import annotations

from ember.config import EngineConfig
from ember.distributed.parallel_state import tp_size
from ember.worker.model_runner import ModelRunner
from ember.worker.pending_step import PendingStep
from ember.worker.step_input import StepInput, StepOutput


class UniprocExecutor:
    def __init__(self, config: EngineConfig):
        if tp_size() != 1:  # the layers would be built as this process's tensor-parallel shard
            raise RuntimeError("A tensor-parallel engine is running in this process: shut it down "
                               "(LLMEngine.shutdown()) before starting another engine.")
        self.runner = ModelRunner(config)

    def determine_num_blocks(self) -> int:
        return self.runner.determine_num_blocks()

    def initialize_cache(self, num_blocks: int) -> None:
        self.runner.initialize_cache(num_blocks)

    def launch(self, step: StepInput) -> PendingStep:
        return self.runner.launch(step)

    def collect(self, pending: PendingStep) -> StepOutput:
        return self.runner.collect(pending)

    def shutdown(self) -> None:
        """Safe to call more than once."""
        if self.runner is not None:
            self.runner.release()
            self.runner = None
