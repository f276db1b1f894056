"""Runs scheduled steps: in this process on one device (uniproc), or over tensor-parallel ranks
in worker processes on this host (multiproc, backend "mp") or in Ray actors across hosts
(ray_executor, backend "ray"). All offer determine_num_blocks / initialize_cache / launch /
collect / shutdown."""
from __future__ import annotations

from ember.config import EngineConfig
from ember.executor.multiproc import MultiprocExecutor
from ember.executor.ray_executor import RayExecutor
from ember.executor.uniproc import UniprocExecutor

_BY_BACKEND = {None: UniprocExecutor, "mp": MultiprocExecutor, "ray": RayExecutor}


def create_executor(config: EngineConfig) -> UniprocExecutor | MultiprocExecutor | RayExecutor:
    return _BY_BACKEND[config.distributed_executor_backend](config)
