"""The parameters of a quantized layer and how checkpoint tensors load into them.

A fused layer (q/k/v, gate/up) stacks its parts along the output dimension, and every tensor of
a quantized format has that dimension somewhere: first or second, counted in rows, in int32
words of packed rows, or in blocks of rows (FP8 block scales). A part's tensor lands in that
part's slice; a tensor of the whole fused layer (Qwen v1's c_attn, shard_id None) is split into
its parts first.

Under tensor parallelism a checkpoint tensor is cut to this rank's share as it loads: along the
output dimension at the rank's rows of each part (column-parallel layers), along the input
dimension at the rank's input features (row-parallel layers). A cut must not fall inside a
packed int32 word, a quantization group or an FP8 block: that is a clear error at load."""
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


def _part_in_checkpoint(layer, shard_id) -> tuple[int, int]:
    """(this rank's first row, all rows) of part `shard_id` in the checkpoint's tensor."""
    full_sizes = getattr(layer, "full_sizes", None)
    if full_sizes is None:
        return 0, layer.out_features
    return layer.sources[shard_id], full_sizes[shard_id]


def _cut(start: int, per_index: int, what: str, layer) -> int:
    if start % per_index:
        raise ValueError(f"tensor parallelism cuts {type(layer).__name__}'s {what} at {start}, inside a "
                         f"block of {per_index} (a packed word, quantization group or FP8 block): "
                         "choose a tensor_parallel_size that keeps the blocks whole.")
    return start // per_index


def add_param(layer: nn.Module, name: str, data: torch.Tensor, output_dim: int | None = None,
              rows_per_index: int = 1, packed: bool = False, per_part: bool = False,
              input_dim: int | None = None, features_per_index: int | None = 1,
              has_default: bool = False) -> nn.Parameter:
    """Register `data` (this rank's shape) as parameter `name` of `layer`. Along `output_dim` one
    index covers `rows_per_index` output rows: a part of r rows takes ceil(r / rows_per_index)
    indices (`packed`: r must divide evenly; `per_part`: one index per part, a per-tensor
    scale). Along `input_dim` one index covers `features_per_index` input features (None: one
    index for the whole input, which every rank keeps). `has_default`: the initial value is
    valid, so a checkpoint may omit the tensor (GPTQ's g_idx without act-order) and random
    weights keep it."""
    param = nn.Parameter(data, requires_grad=False)
    param.output_dim, param.input_dim, param.has_default = output_dim, input_dim, has_default
    if output_dim is not None:
        # part -> (start, count) in this parameter; (start, all indices) in the checkpoint's part
        param.part_slices, param.part_sources, start = {}, {}, 0
        for shard_id, rows in output_parts(layer):
            if packed and rows % rows_per_index:
                raise ValueError(f"{type(layer).__name__} part {shard_id!r} has {rows} output rows, "
                                 f"not a multiple of the {rows_per_index} packed per int32")
            count = 1 if per_part else -(-rows // rows_per_index)
            param.part_slices[shard_id] = (start, count)
            first, full_rows = _part_in_checkpoint(layer, shard_id)
            param.part_sources[shard_id] = (0, 1) if per_part else \
                (_cut(first, rows_per_index, "output rows", layer), -(-full_rows // rows_per_index))
            start += count
        assert start == data.shape[output_dim], (name, start, tuple(data.shape))
    if input_dim is not None:
        count = data.shape[input_dim]
        if features_per_index is None:
            param.input_source = (0, count)
        else:
            param.input_source = (_cut(layer.input_start, features_per_index, "input features", layer),
                                  -(-layer.full_in_features // features_per_index))
    param.weight_loader = load_into
    layer.register_parameter(name, param)
    return param


def _take(loaded: torch.Tensor, dim: int, source: tuple[int, int], count: int, what: str) -> torch.Tensor:
    """This rank's `count` indices from `source` = (start, all indices) along `dim`."""
    start, total = source
    if loaded.shape[dim] != total:
        raise ValueError(f"tensor of shape {tuple(loaded.shape)} has {loaded.shape[dim]} {what} "
                         f"in dimension {dim}, expected {total}")
    return loaded.narrow(dim, start, count)


def load_into(param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
    parts = getattr(param, "part_slices", {})
    if shard_id is None and len(parts) > 1 and loaded.numel() > 1:
        # the parts fused on disk (Qwen v1's c_attn): each in turn
        sizes = [total for _, total in param.part_sources.values()]
        for part_id, part in zip(parts, loaded.split(sizes, dim=param.output_dim)):
            load_into(param, part, part_id)
        return
    target = param.data
    if loaded.numel() == 1:  # a per-tensor scale, stored as [] or [1]
        if shard_id is not None and param.output_dim is not None:
            target = target.narrow(param.output_dim, *parts[shard_id])
        target.copy_(loaded.reshape(()).expand(target.shape))
        return
    if param.input_dim is not None:
        loaded = _take(loaded, param.input_dim, param.input_source, target.shape[param.input_dim], "input indices")
    if param.output_dim is not None:
        start, count = parts[shard_id]
        target = target.narrow(param.output_dim, start, count)
        loaded = _take(loaded, param.output_dim, param.part_sources[shard_id], count, "output indices")
    if loaded.shape != target.shape:
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
