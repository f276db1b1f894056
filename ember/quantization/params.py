"""The parameters of a quantized layer and how checkpoint tensors load into them.

A fused layer (q/k/v, gate/up) stacks its parts along the output dimension, and every tensor of
a quantized format has that dimension somewhere: first or second, counted in rows, in int32
words of packed rows, or in blocks of rows (FP8 block scales). A part's tensor lands in that
part's slice; a tensor of the whole fused layer (Qwen v1's c_attn, shard_id None) fills it all."""
from __future__ import annotations

import torch
from torch import nn


def output_parts(layer) -> list[tuple[object, int]]:
    """(shard_id, rows) of each part of the layer's output, in order; one part for a plain
    Linear."""
    offsets = getattr(layer, "offsets", None)
    if offsets is None:
        return [(None, layer.out_features)]
    return [(shard_id, size) for shard_id, (_, size) in offsets.items()]


def add_param(layer: nn.Module, name: str, data: torch.Tensor, output_dim: int | None = None,
              rows_per_index: int = 1, packed: bool = False, per_part: bool = False,
              has_default: bool = False) -> nn.Parameter:
    """Register `data` as parameter `name` of `layer`. Along `output_dim` one index covers
    `rows_per_index` output rows: a part of r rows takes ceil(r / rows_per_index) indices
    (`packed`: r must divide evenly; `per_part`: one index per part, a per-tensor scale).
    `has_default`: the initial value is valid, so a checkpoint may omit the tensor (GPTQ's g_idx
    without act-order) and random weights keep it."""
    param = nn.Parameter(data, requires_grad=False)
    param.output_dim, param.has_default = output_dim, has_default
    if output_dim is not None:
        param.part_slices, start = {}, 0
        for shard_id, rows in output_parts(layer):
            if packed and rows % rows_per_index:
                raise ValueError(f"{type(layer).__name__} part {shard_id!r} has {rows} output rows, "
                                 f"not a multiple of the {rows_per_index} packed per int32")
            count = 1 if per_part else -(-rows // rows_per_index)
            param.part_slices[shard_id] = (start, count)
            start += count
        assert start == data.shape[output_dim], (name, start, tuple(data.shape))
    param.weight_loader = load_into
    layer.register_parameter(name, param)
    return param


def load_into(param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
    target = param.data
    if shard_id is not None and param.output_dim is not None:
        start, count = param.part_slices[shard_id]
        target = target.narrow(param.output_dim, start, count)
    if loaded.shape != target.shape:
        if loaded.numel() == 1:  # a per-tensor scale, stored as [] or [1]
            loaded = loaded.reshape(()).expand(target.shape)
        else:
            raise ValueError(f"tensor of shape {tuple(loaded.shape)} does not fit {tuple(target.shape)}"
                             + (f" (part {shard_id!r})" if shard_id is not None else ""))
    target.copy_(loaded)


def replace_params(layer: nn.Module, **tensors: torch.Tensor | None) -> None:
    """After loading: swap the checkpoint's tensors for the ones the kernels read (None
    removes one)."""
    for name, data in tensors.items():
        if name in layer._parameters:
            delattr(layer, name)
        if data is not None:
            layer.register_parameter(name, nn.Parameter(data, requires_grad=False))
