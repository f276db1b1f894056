"""Which tensor-parallel rank this process is, out of how many. A worker sets it once, before it
builds its shard of the model; the layers read it while they are built. A single-device engine
never sets it and reads rank 0 of 1, so the same model code serves both."""
from __future__ import annotations

import torch.distributed as dist

_rank = 0
_size = 1


def init_tensor_parallel(rank: int, world_size: int, init_method: str, backend: str) -> None:
    """Join the process group of all ranks: NCCL between GPUs, gloo on the CPU."""
    global _rank, _size
    if dist.is_initialized():
        raise RuntimeError("torch.distributed is already initialized in this process: one "
                           "tensor-parallel engine per process (shut the previous one down first).")
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size)
    _rank, _size = rank, world_size


def destroy_tensor_parallel() -> None:
    global _rank, _size
    if _size > 1 and dist.is_initialized():
        dist.destroy_process_group()
    _rank, _size = 0, 1


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
