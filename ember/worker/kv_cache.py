"""The paged KV cache's memory: how many blocks fit, and the tensors every attention layer
reads and writes. On the GPU the size comes from profiling a full forward pass and giving the
cache what remains of gpu_memory_utilization; on the CPU from a fixed space."""
from __future__ import annotations

import logging

import torch

from ember.models.layers.attention import Attention

logger = logging.getLogger(__name__)


def attention_layers(model: torch.nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


def bytes_per_block(model: torch.nn.Module, block_size: int, dtype: torch.dtype) -> int:
    layers = attention_layers(model)
    per_token = sum(2 * a.num_kv_heads * a.head_dim for a in layers)
    return per_token * block_size * torch.empty((), dtype=dtype).element_size()


def gpu_blocks_from_profile(peak_bytes: int, utilization: float, per_block: int, device) -> int:
    """Blocks that fit in `utilization` of the GPU once the profiled peak (weights plus the
    activations of the largest step) and memory outside PyTorch are set aside."""
    free, total = torch.cuda.mem_get_info(device)
    outside_torch = total - free - torch.cuda.memory_reserved(device)
    available = total * utilization - peak_bytes - max(outside_torch, 0)
    if available < per_block:
        raise RuntimeError(
            f"No memory left for the KV cache: the model and activations need {peak_bytes / 2**30:.2f} GiB "
            f"of {total / 2**30:.2f} GiB at gpu_memory_utilization={utilization}. Raise "
            "--gpu-memory-utilization or lower --max-num-batched-tokens / --max-model-len.")
    return int(available // per_block)


def allocate_kv_cache(model: torch.nn.Module, num_blocks: int, block_size: int, dtype: torch.dtype,
                      device) -> list[torch.Tensor]:
    caches = []
    for layer in attention_layers(model):
        shape = (2, num_blocks, block_size, layer.num_kv_heads, layer.head_dim)
        # Unwritten slots are never read (attention masks by sequence length), so the cache
        # need not be zeroed; on the CPU this also keeps untouched pages uncommitted.
        cache = torch.empty(shape, dtype=dtype, device=device)
        layer.k_cache, layer.v_cache = cache[0], cache[1]
        caches.append(cache)
    return caches
