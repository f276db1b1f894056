"""Linear layers that know how checkpoint tensors map onto them: fused q/k/v and gate/up
projections load their parts into slices of one weight, so each runs as a single GEMM.

Under tensor parallelism each rank keeps only its slice of a weight, cut at load: the fused
projections are column-parallel (each rank holds its share of every part's output rows), and
RowParallelLinear splits the input features and all-reduces the partial sums."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from ember.distributed.communication import all_reduce
from ember.distributed.parallel_state import shard_size, tp_rank, tp_size
from ember.kernels.gemv import FASTEST_ROWS

_placeholder_weights = False


@contextmanager
def placeholder_weights():
    """Linear layers built inside get a weight on the "meta" device (no memory): a quantized
    model's layers then take the tensors of their format (ember.quantization) without ever
    holding a dense copy."""
    global _placeholder_weights
    previous, _placeholder_weights = _placeholder_weights, True
    try:
        yield
    finally:
        _placeholder_weights = previous


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 one_row_product: Callable | None = None):
        """one_row_product(x, weight, bias): the product of a dense weight for one row of x
        (LayerKernels.one_row_product); None: F.linear for every M."""
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.one_row_product = one_row_product
        # Where this rank's input features lie among the checkpoint's (split only by
        # RowParallelLinear): quantized tensors index the input dimension too.
        self.input_start, self.full_in_features = 0, in_features
        # None: a dense weight. Otherwise the quantization method whose tensors replace it
        # (create_weights / process_weights_after_loading / apply, see ember.quantization).
        self.quant_method = None
        self.weight = nn.Parameter(torch.empty(out_features, in_features,
                                               device="meta" if _placeholder_weights else None),
                                   requires_grad=False)
        self.weight.weight_loader = self.load_full
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False)
            self.bias.weight_loader = self.load_full
        else:
            self.register_parameter("bias", None)

    @staticmethod
    def load_full(param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        if param.shape != loaded.shape:
            raise ValueError(f"weight shape {tuple(loaded.shape)} does not match {tuple(param.shape)}")
        param.data.copy_(loaded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant_method is None:
            return self._dense(x, self.bias)  # the bias fused into the product
        return self._add_bias(self._product(x))

    def _product(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T without the bias."""
        return self._dense(x, None) if self.quant_method is None else self.quant_method.apply(self, x)

    def _dense(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.one_row_product is not None and x.dim() == 2 and x.shape[0] <= FASTEST_ROWS:
            return self.one_row_product(x, self.weight, bias)
        return F.linear(x, self.weight, bias)

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.bias is None else out + self.bias


def _even_share(rows: int, what: str) -> tuple[int, int]:
    """(first row, row count) of this rank's even share of `rows`."""
    size = shard_size(rows, what)
    return tp_rank() * size, size


class RowParallelLinear(Linear):
    """Input features split over the tensor-parallel ranks: each multiplies its slice of the
    input (the sharded output of the column-parallel layer before it) and the partial sums are
    all-reduced. The bias is added once, after the sum."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 one_row_product: Callable | None = None):
        super().__init__(shard_size(in_features, "the input features of a row-parallel layer"),
                         out_features, bias, one_row_product)
        self.input_start, self.full_in_features = tp_rank() * self.in_features, in_features
        self.weight.weight_loader = self.load_columns

    def load_columns(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        if loaded.shape[1] != self.full_in_features:
            raise ValueError(f"weight shape {tuple(loaded.shape)} does not match {self.full_in_features} input features")
        Linear.load_full(param, loaded.narrow(1, self.input_start, self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tp_size() == 1:
            return super().forward(x)
        return self._add_bias(all_reduce(self._product(x)))


class FusedLinear(Linear):
    """Several projections of the same input stacked on the output dimension; `shard_id` names
    which one a checkpoint tensor is. `part_sizes` are the checkpoint's (full) row counts; each
    rank holds an even share of every part unless `rank_rows` says which rows
    (part -> (first row, row count) in the checkpoint's part)."""

    def __init__(self, in_features: int, part_sizes: dict, bias: bool = False, rank_rows: dict | None = None,
                 one_row_product: Callable | None = None):
        rank_rows = rank_rows or {}
        rows = {name: rank_rows.get(name) or _even_share(size, f"part {name!r} of a fused projection")
                for name, size in part_sizes.items()}
        super().__init__(in_features, sum(n for _, n in rows.values()), bias, one_row_product)
        self.full_sizes = dict(part_sizes)
        self.sources = {name: first for name, (first, _) in rows.items()}
        self.offsets, offset = {}, 0
        for name, (_, size) in rows.items():
            self.offsets[name] = (offset, size)
            offset += size
        self.weight.weight_loader = self.load_part
        if bias:
            self.bias.weight_loader = self.load_part

    def load_part(self, param: nn.Parameter, loaded: torch.Tensor, shard_id) -> None:
        if shard_id is None:  # the parts fused on disk (Qwen v1's c_attn): each in turn
            for name, part in zip(self.full_sizes, loaded.split(list(self.full_sizes.values()))):
                self.load_part(param, part, name)
            return
        offset, size = self.offsets[shard_id]
        if loaded.shape[0] != self.full_sizes[shard_id]:
            raise ValueError(f"part {shard_id!r} has {loaded.shape[0]} rows, expected {self.full_sizes[shard_id]}")
        param.data.narrow(0, offset, size).copy_(loaded.narrow(0, self.sources[shard_id], size))


class QKVLinear(FusedLinear):
    """q, k and v, split by heads over the ranks. With fewer kv heads than ranks each kv head is
    replicated: rank r holds kv head r * num_kv_heads // tp, the one its q heads attend with."""

    def __init__(self, hidden: int, head_dim: int, num_heads: int, num_kv_heads: int, bias: bool,
                 one_row_product: Callable | None = None):
        tp = tp_size()
        shard_size(num_heads, "the number of attention heads")
        rank_rows = None
        if num_kv_heads < tp:
            if tp % num_kv_heads:
                raise ValueError(f"tensor_parallel_size={tp} must be a multiple of the number of "
                                 f"key/value heads ({num_kv_heads}) when it exceeds it.")
            kv_rows = (tp_rank() * num_kv_heads // tp * head_dim, head_dim)
            rank_rows = {"k": kv_rows, "v": kv_rows}
        else:
            shard_size(num_kv_heads, "the number of key/value heads")
        super().__init__(hidden, {"q": num_heads * head_dim, "k": num_kv_heads * head_dim,
                                  "v": num_kv_heads * head_dim}, bias, rank_rows, one_row_product)
        self.q_size = self.offsets["q"][1]
        self.kv_size = self.offsets["k"][1]

    def forward(self, x: torch.Tensor):
        return super().forward(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
