"""One tensor-parallel rank: it joins the process group, loads its shard of the model and runs
its part of every call the driver makes. The driver's rank runs one in the engine process; each
other rank runs one in a worker process (mp backend) or a Ray actor, driven by the same calls."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

import torch

from ember.config import EngineConfig
from ember.distributed.parallel_state import destroy_tensor_parallel, init_tensor_parallel
from ember.models.source import resolve_model
from ember.worker.model_runner import ModelRunner
from ember.worker.step_input import StepInput


@dataclass(frozen=True)
class RankSpec:
    rank: int
    world_size: int
    init_method: str   # where the ranks meet: file:// on one host, tcp:// across hosts
    device: str        # this rank's device: "cpu" or "cuda:N"


class Worker:
    def __init__(self, config: EngineConfig, spec: RankSpec, watch: Callable[[], None] | None = None):
        """`watch`: raises if another rank has failed (the driver's view of its workers)."""
        # The engine's config, resolved once; this rank only names its own device (and, on
        # another host, its own copy of the checkpoint).
        config = dataclasses.replace(config, device=spec.device)
        if not os.path.exists(config.model_path):  # on another host: the checkpoint is fetched here too
            config = dataclasses.replace(config, model_path=resolve_model(config.model, config.revision,
                                                                          config.download_dir))
        device = torch.device(spec.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        elif spec.rank > 0:
            # CPU ranks share the host's cores; more threads than cores only make them wait.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.world_size))
        init_tensor_parallel(spec.rank, spec.world_size, spec.init_method,
                             "nccl" if device.type == "cuda" else "gloo", watch)
        try:
            self.runner = ModelRunner(config)
        except BaseException:
            destroy_tensor_parallel()
            raise

    def determine_num_blocks(self) -> int:
        return self.runner.determine_num_blocks()

    def initialize_cache(self, num_blocks: int) -> None:
        self.runner.initialize_cache(num_blocks)

    def execute(self, step: StepInput) -> None:
        """This rank's share of a step: the forward pass (the driver samples)."""
        self.runner.launch(step)

    def close(self) -> None:
        destroy_tensor_parallel()
