"""The collectives of tensor parallelism, each a no-op on one rank: the sum of partial results
after a row-parallel layer (one-shot through symmetric memory for small messages where the
group set it up, else the process group's), the vocabulary slices of the logits gathered on
the driver, and the driver's sampled tokens sent to the other ranks (which feed them to the
next step)."""
from __future__ import annotations

import torch
import torch.distributed as dist

from ember.distributed.parallel_state import one_shot_all_reduce, tp_rank, tp_size


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """The sum of every rank's `x`: `x` itself summed in place, or a new tensor; use the result."""
    if tp_size() == 1:
        return x
    one_shot = one_shot_all_reduce()
    if one_shot is not None and one_shot.fits(x):
        return one_shot(x)
    dist.all_reduce(x)
    return x


def gather_on_driver(x: torch.Tensor) -> torch.Tensor | None:
    """Every rank's `x` concatenated on the last dimension, in rank order, on rank 0; None on
    the others. A gather rather than an all-gather: only the driver samples."""
    if tp_size() == 1:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(tp_size())] if tp_rank() == 0 else None
    dist.gather(x, parts, dst=0)
    return torch.cat(parts, dim=-1) if parts is not None else None


def broadcast_from_driver(x: torch.Tensor) -> torch.Tensor:
    """Rank 0's `x` on every rank (the others pass a buffer of the same shape and dtype)."""
    if tp_size() > 1:
        dist.broadcast(x, src=0)
    return x
