"""The checks a parallel configuration must pass before any process starts, each failing with
a message that says what to change, and the choice of executor backend."""
from __future__ import annotations

import torch

from ember.dependencies import require

BACKENDS = ("mp", "ray")


def check_parallel_flags(tp: int, pp: int, backend: str | None) -> None:
    """What can be checked before the model is even located."""
    if pp != 1:
        raise ValueError(f"pipeline_parallel_size={pp} is not supported by Ember: split the model with "
                         "--tensor-parallel-size instead (across hosts with --distributed-executor-backend ray).")
    if not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tensor_parallel_size must be an integer >= 1, got {tp!r}.")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"distributed_executor_backend must be one of {', '.join(BACKENDS)} (or unset), "
                         f"got {backend!r}.")


def choose_backend(tp: int, backend: str | None, device: str, hf_config) -> str | None:
    """Checks the split against the device and the model; returns the executor backend: None
    for a single rank in this process (whatever was asked), else "mp" or "ray"."""
    if tp == 1:
        return None
    check_model_split(hf_config, tp)
    if device.startswith("cuda") and ":" in device:
        raise ValueError(f"device={device!r} names one GPU, but tensor_parallel_size={tp} needs {tp}: use "
                         "device 'cuda' and choose the GPUs with CUDA_VISIBLE_DEVICES.")
    if not device.startswith(("cuda", "cpu")):
        raise ValueError(f"tensor parallelism runs on 'cuda' or 'cpu' devices, not {device!r}.")
    local_gpus = torch.cuda.device_count() if device.startswith("cuda") else None
    if backend is None:
        backend = "ray" if local_gpus is not None and tp > local_gpus else "mp"
    if backend == "mp" and local_gpus is not None and tp > local_gpus:
        raise ValueError(f"tensor_parallel_size={tp} needs {tp} GPUs but this host has {local_gpus}: "
                         "use --distributed-executor-backend ray to span hosts.")
    if backend == "ray":
        require("ray", "The Ray backend (--distributed-executor-backend ray)")
    return backend


def check_model_split(hf_config, tp: int) -> None:
    """Attention heads, kv heads and the MLP must split evenly over the ranks. With fewer kv
    heads than ranks, each kv head is replicated, which needs tp to be a multiple of them. The
    vocabulary needs no check: its last slice is padded."""
    heads = hf_config.num_attention_heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    if heads % tp:
        raise ValueError(f"tensor_parallel_size={tp} must divide the model's number of attention heads "
                         f"({heads}).")
    if kv_heads % tp and tp % kv_heads:
        raise ValueError(f"tensor_parallel_size={tp} and the model's {kv_heads} key/value heads must divide "
                         "one another (fewer kv heads than ranks are replicated).")
    if hf_config.intermediate_size % tp:
        raise ValueError(f"tensor_parallel_size={tp} must divide the model's intermediate_size "
                         f"({hf_config.intermediate_size}).")
