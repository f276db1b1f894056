"""Random dense weights that do not depend on the tensor-parallel size (load_format="dummy":
benchmarks without a download). A weight is drawn at its full, unsharded shape and goes through
its loader as a checkpoint tensor would, so every rank keeps its slice of the same model and
greedy outputs of any tensor-parallel size can be compared."""
from __future__ import annotations

import torch

from ember.distributed.parallel_state import tp_size
from ember.models.layers.linear import FusedLinear, RowParallelLinear
from ember.models.layers.vocab_parallel import VocabParallelEmbedding


def _full_shape(module: torch.nn.Module, name: str, param: torch.Tensor) -> tuple[int, ...]:
    if isinstance(module, FusedLinear):
        return (sum(module.full_sizes.values()), *param.shape[1:])
    if isinstance(module, RowParallelLinear) and name == "weight":
        return param.shape[0], param.shape[1] * tp_size()
    if isinstance(module, VocabParallelEmbedding):
        return module.vocab_size, param.shape[1]
    return tuple(param.shape)


def draw_unsharded(module: torch.nn.Module, name: str, param: torch.nn.Parameter,
                   generator: torch.Generator, std: float = 0.02) -> None:
    """Fill `module`'s parameter `name` (`param`) with this rank's slice of N(0, std) noise
    drawn at the full shape."""
    if getattr(module, "quant_method", None) is not None:  # quantized: one rank only, drawn in place
        param.data.normal_(0, std, generator=generator)
        return
    full = torch.empty(_full_shape(module, name, param), dtype=param.dtype, device=param.device)
    full.normal_(0, std, generator=generator)
    loader = getattr(param, "weight_loader", None)
    if loader is None:
        param.data.copy_(full)
    else:
        # shard_id None: a fused layer takes all its parts from one tensor, as from Qwen v1's c_attn.
        loader(param, full, None)
