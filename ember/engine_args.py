"""EngineArgs: the engine's settings as a user gives them (`LLM(**kwargs)`, the CLI flags), plain
values with vLLM's names and defaults. `resolve()` is the one place that reads the checkpoint:
it checks every value and returns the frozen EngineConfig the rest of the engine reads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ember.config import EngineConfig
from ember.distributed.validation import check_parallel_flags, choose_backend
from ember.models.hf_config import (config_dtype, load_generation_config, load_hf_config, max_context_of,
                                    split_gguf)
from ember.models.source import resolve_model
from ember.quantization.gguf_cpu import cpu_default_dtype
from ember.quantization.config import check_fp8_support, kv_cache_torch_dtype, resolve_quantization

_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class EngineArgs:
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

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EngineArgs":
        """`LLM(**kwargs)`: an unknown name is a TypeError that lists it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"Unknown engine argument(s): {', '.join(unknown)}")
        return cls(**kwargs)

    def resolve(self) -> EngineConfig:
        """Check the values, locate (and if need be download) the checkpoint, read its config and
        pick what was left to pick. Raises ValueError, with a message for the user, for any
        unsupported or invalid value."""
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
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model_path = resolve_model(self.model, self.revision, self.download_dir)
        hf_config = load_hf_config(model_path, self.rope_scaling)
        torch_dtype = _resolve_dtype(self.dtype, device, hf_config, model_path)
        quant_config = resolve_quantization(self.quantization, hf_config, split_gguf(model_path)[0],
                                            self.load_format)
        kv_dtype = kv_cache_torch_dtype(self.kv_cache_dtype, torch_dtype)
        check_fp8_support(quant_config, kv_dtype, device)
        backend = choose_backend(self.tensor_parallel_size, self.distributed_executor_backend, device, hf_config)
        max_num_batched_tokens = self.max_num_batched_tokens
        if max_num_batched_tokens is None:
            max_num_batched_tokens = max(8192, self.max_num_seqs)
        if max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({max_num_batched_tokens}) must be >= "
                             f"max_num_seqs ({self.max_num_seqs}).")
        on_cuda = device.startswith("cuda")
        return EngineConfig(
            model=self.model, tokenizer=self.tokenizer, revision=self.revision, download_dir=self.download_dir,
            trust_remote_code=self.trust_remote_code, seed=self.seed,
            max_model_len=_resolve_max_model_len(self.max_model_len, hf_config),
            gpu_memory_utilization=self.gpu_memory_utilization, max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, block_size=self.block_size,
            enable_prefix_caching=self.enable_prefix_caching, enforce_eager=self.enforce_eager, device=device,
            skip_tokenizer_init=self.skip_tokenizer_init, quantization=self.quantization,
            kv_cache_dtype=self.kv_cache_dtype, rope_scaling=self.rope_scaling, load_format=self.load_format,
            tensor_parallel_size=self.tensor_parallel_size, pipeline_parallel_size=self.pipeline_parallel_size,
            distributed_executor_backend=backend, num_gpu_blocks_override=self.num_gpu_blocks_override,
            async_scheduling=(on_cuda and not self.enforce_eager) if self.async_scheduling is None
            else self.async_scheduling,
            attention_backend=self.attention_backend or ("triton" if on_cuda else "torch"),
            served_model_name=list(self.served_model_name or [self.model]),
            model_path=model_path,
            tokenizer_path=model_path if self.tokenizer is None
            else resolve_model(self.tokenizer, self.revision, self.download_dir),
            hf_config=hf_config, generation_config=load_generation_config(model_path), torch_dtype=torch_dtype,
            quant_config=quant_config, kv_cache_torch_dtype=kv_dtype)


def _resolve_dtype(dtype: str | torch.dtype, device: str, hf_config, model_path: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {dtype!r}.")
        resolved = _DTYPES[dtype]
    elif not device.startswith("cuda"):
        return cpu_default_dtype(model_path if split_gguf(model_path)[1] else None)
    else:
        resolved = config_dtype(hf_config) or torch.bfloat16
        if isinstance(resolved, str):
            resolved = _DTYPES.get(resolved, torch.bfloat16)
        if resolved == torch.float32:
            resolved = torch.bfloat16
        if resolved == torch.bfloat16 and not _bf16_supported(device):
            resolved = torch.float16
    if resolved == torch.bfloat16 and device.startswith("cuda") and not _bf16_supported(device):
        raise ValueError("bfloat16 needs a GPU of compute capability >= 8.0; use --dtype float16.")
    return resolved


def _resolve_max_model_len(asked: int | None, hf_config) -> int:
    limit = max_context_of(hf_config)
    if asked is None:
        return limit
    if asked > limit:
        raise ValueError(f"max_model_len ({asked}) is larger than the model's maximum context ({limit}, from "
                         "max_position_embeddings and rope_scaling).")
    if asked < 1:
        raise ValueError(f"max_model_len must be >= 1, got {asked}.")
    return asked


def _bf16_supported(device: str) -> bool:
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8
