"""EngineConfig: every setting of the engine, resolved against the checkpoint and frozen.
EngineArgs.resolve() (ember/engine_args.py) builds the one instance; the engine, the executor
and every worker read it and nothing changes it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class EngineConfig:
    # What was asked (EngineArgs' values, every "pick for me" None already picked).
    model: str
    tokenizer: str | None
    revision: str | None
    download_dir: str | None
    trust_remote_code: bool
    seed: int
    max_model_len: int
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    enable_prefix_caching: bool
    enforce_eager: bool
    device: str
    skip_tokenizer_init: bool
    quantization: str | None
    kv_cache_dtype: str
    rope_scaling: dict | None
    load_format: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    # None for one rank in this process, else "mp" or "ray" (see EngineArgs).
    distributed_executor_backend: str | None
    num_gpu_blocks_override: int | None
    async_scheduling: bool
    attention_backend: str
    served_model_name: list[str]
    # What the checkpoint says.
    model_path: str
    tokenizer_path: str
    hf_config: Any
    generation_config: dict
    torch_dtype: torch.dtype
    # The checkpoint's quantization settings (ember.quantization), None for dense weights.
    quant_config: Any
    kv_cache_torch_dtype: torch.dtype


def cpu_kv_cache_bytes() -> int:
    """CPU has no memory to profile: the KV cache gets a fixed space, like vLLM's
    VLLM_CPU_KVCACHE_SPACE (GiB)."""
    gib = float(os.environ.get("EMBER_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4")))
    return int(gib * (1 << 30))
