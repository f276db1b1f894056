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


def broadcast_token_ids(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Rank 0's sampled token ids (int64, 1-D) on every rank (the others pass a buffer of the
    same shape). Where the one-shot all-reduce serves, a sum to which the other ranks add
    zeros: one kernel on the compute stream, as the step's other collectives, instead of an
    NCCL broadcast on its own stream with its events and bookkeeping on the host each step.
    Exact while ids are whole float32s (below 2**24)."""
    if tp_size() == 1:
        return ids
    one_shot = one_shot_all_reduce()
    if one_shot is not None and vocab_size <= _FLOAT32_WHOLE:
        # Padded to the one-shot kernel's 16-byte vectors.
        padded = torch.zeros(-(-ids.numel() // 4) * 4, dtype=torch.float32, device=ids.device)
        if tp_rank() == 0:
            padded[:ids.numel()] = ids
        if one_shot.fits(padded):
            return one_shot(padded)[:ids.numel()].to(torch.int64)
    dist.broadcast(ids, src=0)
    return ids


_FLOAT32_WHOLE = 2**24  # every integer up to here is exact in float32
