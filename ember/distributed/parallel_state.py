"""Which tensor-parallel rank this process is, out of how many. A worker sets it once, before it
builds its shard of the model; the layers read it while they are built. A single-device engine
never sets it and reads rank 0 of 1, so the same model code serves both."""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.distributed as dist

from ember.distributed.symm_mem_all_reduce import SymmMemAllReduce

_rank = 0
_size = 1
# As long as torch.distributed's own default wait (gloo's), for ranks still loading a large model.
RANKS_ARRIVAL_TIMEOUT_S = 1800.0
_before_leaving: list[Callable[[], None]] = []
# The one-shot all-reduce for small messages, where the GPUs and torch allow it (None: the
# process group's own all-reduce for every message).
_one_shot: SymmMemAllReduce | None = None


def init_tensor_parallel(rank: int, world_size: int, init_method: str, backend: str,
                         watch: Callable[[], None] | None = None) -> None:
    """Join the process group of all ranks: NCCL between GPUs, gloo on the CPU, and on GPUs
    that reach each other the one-shot all-reduce for small messages (chosen here, once).
    `watch` is called while waiting for the other ranks and raises if one of them has failed:
    the wait inside torch.distributed would only end at its timeout (30 minutes on gloo)."""
    global _rank, _size, _one_shot
    if dist.is_initialized():
        raise RuntimeError("torch.distributed is already initialized in this process: one "
                           "tensor-parallel engine per process (shut the previous one down first).")
    store, rank, world_size = next(dist.rendezvous(init_method, rank, world_size))
    _wait_for_all_ranks(store, world_size, watch)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    _rank, _size = rank, world_size
    if backend == "nccl":
        _one_shot = SymmMemAllReduce.create(dist.group.WORLD, torch.device("cuda", torch.cuda.current_device()))


def _wait_for_all_ranks(store, world_size: int, watch: Callable[[], None] | None) -> None:
    """A barrier of our own before torch.distributed's: it can be left when `watch` raises,
    which leaves no half-made process group behind."""
    deadline = time.monotonic() + RANKS_ARRIVAL_TIMEOUT_S
    arrived = store.add("ember/ranks_arrived", 1)
    while arrived < world_size:
        if watch is not None:
            watch()
        if time.monotonic() > deadline:
            raise RuntimeError(f"Only {arrived} of {world_size} tensor-parallel ranks arrived within "
                               f"{RANKS_ARRIVAL_TIMEOUT_S:.0f} s.")
        time.sleep(0.02)
        arrived = store.add("ember/ranks_arrived", 0)


def before_leaving(release: Callable[[], None]) -> None:
    """Have `release` run when this rank leaves the group, before its communicators go. NCCL
    (from 2.26) frees a communicator, even by abort, only once every CUDA graph that captured
    its collectives is destroyed: until then it waits, for ever. So the graphs go first."""
    _before_leaving.append(release)


def destroy_tensor_parallel() -> None:
    """Leave the process group without waiting for the other ranks. A graceful destroy on NCCL
    (finalize, then destroy) waits for every rank, and hangs for good once one has exited; an
    abort releases this rank's communicators alone, so the ranks may leave in any order, or
    not at all (a killed worker); collectives still in flight (an engine that failed mid-step)
    end with it. A torch without the abort destroys instead."""
    global _rank, _size, _one_shot
    if _size > 1 and dist.is_initialized():
        while _before_leaving:
            _before_leaving.pop()()
        if _one_shot is not None:  # after the graphs that captured it
            _one_shot.close()
        leave = getattr(dist.distributed_c10d, "_abort_process_group", None) or dist.destroy_process_group
        leave()
    _before_leaving.clear()
    _rank, _size, _one_shot = 0, 1, None


def one_shot_all_reduce() -> SymmMemAllReduce | None:
    return _one_shot


def tp_rank() -> int:
    return _rank


def tp_size() -> int:
    return _size


def is_driver() -> bool:
    """Rank 0 lives in the engine process: it alone receives logits and samples."""
    return _rank == 0


def shard_size(total: int, what: str) -> int:
    """This rank's even share of `total`; a clear error when the split is uneven."""
    if total % _size:
        raise ValueError(f"tensor_parallel_size={_size} must divide {what} ({total}).")
    return total // _size
