"""EngineConfig: every knob of the engine, validated once. `LLM(**kwargs)` and the CLI flags
both build one; everything below reads its settings from here."""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ember.distributed.validation import check_parallel_flags, choose_backend
from ember.models.hf_config import (config_dtype, load_generation_config, load_hf_config, max_context_of,
                                    split_gguf)
from ember.models.source import resolve_model
from ember.quantization.config import check_fp8_support, kv_cache_torch_dtype, resolve_quantization

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16}

@dataclass
class EngineConfig:
    model: str
    tokenizer: str | None = None
    revision: str | None = None
    download_dir: str | None = None
    trust_remote_code: bool = False
    dtype: str | torch.dtype = "auto"
    seed: int = 0
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    block_size: int = 16
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    device: str | None = None
    skip_tokenizer_init: bool = False
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    rope_scaling: dict | None = None
    # "auto" reads the checkpoint; "dummy" gives random weights at its shapes (benchmarks).
    load_format: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1  # refused unless 1: tensor parallelism only
    # How ranks beyond the first run: "mp" (processes on this host) or "ray" (actors of a Ray
    # cluster, across hosts); None picks "mp" when this host has the GPUs, else "ray".
    distributed_executor_backend: str | None = None
    # KV cache size in blocks, bypassing memory profiling (tests use it to force preemption).
    num_gpu_blocks_override: int | None = None
    # Schedule step N+1 while step N runs on the device (None: on for CUDA unless enforce_eager).
    async_scheduling: bool | None = None
    # Attention backend: "torch" (reference, any device) or "triton" (GPU); None picks.
    attention_backend: str | None = None
    served_model_name: list[str] | None = None
    # Derived in __post_init__.
    model_path: str = field(init=False)
    hf_config: Any = field(init=False, repr=False)
    generation_config: dict = field(init=False, repr=False)
    torch_dtype: torch.dtype = field(init=False)
    # The checkpoint's quantization settings (ember.quantization), None for dense weights.
    quant_config: Any = field(init=False, repr=False)
    kv_cache_torch_dtype: torch.dtype = field(init=False)

    def __post_init__(self) -> None:
        check_parallel_flags(self.tensor_parallel_size, self.pipeline_parallel_size,
                             self.distributed_executor_backend)
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}.")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}.")
        if self.block_size not in (8, 16, 32, 64, 128):
            raise ValueError(f"block_size must be one of 8, 16, 32, 64, 128, got {self.block_size}.")
        if self.load_format not in ("auto", "dummy"):
            raise ValueError(f"load_format must be 'auto' or 'dummy', got {self.load_format!r}.")
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model_path = resolve_model(self.model, self.revision, self.download_dir)
        self.hf_config = load_hf_config(self.model_path, self.rope_scaling)
        self.generation_config = load_generation_config(self.model_path)
        self.torch_dtype = self._resolve_dtype()
        self.quant_config = resolve_quantization(self.quantization, self.hf_config,
                                                 split_gguf(self.model_path)[0], self.load_format)
        self.kv_cache_torch_dtype = kv_cache_torch_dtype(self.kv_cache_dtype, self.torch_dtype)
        check_fp8_support(self.quant_config, self.kv_cache_torch_dtype, self.device)
        self.distributed_executor_backend = choose_backend(
            self.tensor_parallel_size, self.distributed_executor_backend, self.device, self.hf_config)
        self._resolve_max_model_len()
        if self.max_num_batched_tokens is None:
            self.max_num_batched_tokens = max(8192, self.max_num_seqs)
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                             f"max_num_seqs ({self.max_num_seqs}).")
        if self.async_scheduling is None:
            self.async_scheduling = self.device.startswith("cuda") and not self.enforce_eager
        if self.attention_backend is None:
            self.attention_backend = "triton" if self.device.startswith("cuda") else "torch"
        if self.served_model_name is None:
            self.served_model_name = [self.model]

    def _resolve_dtype(self) -> torch.dtype:
        if isinstance(self.dtype, torch.dtype):
            return self.dtype
        if self.dtype != "auto":
            if self.dtype not in _DTYPES:
                raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {self.dtype!r}.")
            dtype = _DTYPES[self.dtype]
        elif not self.device.startswith("cuda"):
            return torch.float32
        else:
            dtype = config_dtype(self.hf_config) or torch.bfloat16
            if isinstance(dtype, str):
                dtype = _DTYPES.get(dtype, torch.bfloat16)
            if dtype == torch.float32:
                dtype = torch.bfloat16
            if dtype == torch.bfloat16 and not _bf16_supported(self.device):
                dtype = torch.float16
        if dtype == torch.bfloat16 and self.device.startswith("cuda") and not _bf16_supported(self.device):
            raise ValueError("bfloat16 needs a GPU of compute capability >= 8.0; use --dtype float16.")
        return dtype

    def _resolve_max_model_len(self) -> None:
        limit = max_context_of(self.hf_config)
        if self.max_model_len is None:
            self.max_model_len = limit
        elif self.max_model_len > limit:
            raise ValueError(f"max_model_len ({self.max_model_len}) is larger than the model's maximum "
                             f"context ({limit}, from max_position_embeddings and rope_scaling).")
        elif self.max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {self.max_model_len}.")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EngineConfig":
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"Unknown engine argument(s): {', '.join(unknown)}")
        return cls(**kwargs)

    @property
    def tokenizer_path(self) -> str:
        if self.tokenizer is None:
            return self.model_path
        return resolve_model(self.tokenizer, self.revision, self.download_dir)


def _bf16_supported(device: str) -> bool:
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def cpu_kv_cache_bytes() -> int:
    """CPU has no memory to profile: the KV cache gets a fixed space, like vLLM's
    VLLM_CPU_KVCACHE_SPACE (GiB)."""
    gib = float(os.environ.get("EMBER_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4")))
    return int(gib * (1 << 30))
